/* kwsd-bench-peers.c: what many local peers of the event endpoint cost a running kwsd.
 *
 * Starts the built kwsd under the service unit's descriptor limit
 * (LimitNOFILE=256 unless --nofile says otherwise), capturing low noise
 * through ALSA's file plugin over a null slave (DESIGN.md) and publishing on
 * tcp://127.0.0.1. One subscriber watches the heartbeat (kws.status, every
 * second) throughout. Then, one phase after another:
 *   - conns:  --conns ZeroMQ SUB peers connect, each with one subscription;
 *   - subs:   one SUB peer sends --subs distinct subscriptions of
 *             --topic-len bytes (24 to 500; kwsd refuses frames over 512);
 *   - frame:  a peer speaking ZMTP 3.0 by hand announces a 1 GiB frame and
 *             sends as much of it as kwsd will take;
 * each held for --hold seconds, then closed. For each phase it reports
 * kwsd's RSS before, at the peak and 10 s after the peers left (VmRSS, VmHWM),
 * its open descriptors, the longest gap between two heartbeats (by kwsd's
 * own uptime_s, so a late bench does not count) and how many arrived, and
 * whether a SIGHUP reload during the phase succeeded (its log line), and
 * kwsd's CPU time from the phase's start until the peers leave.
 *
 *     kwsd-bench-peers [--conns 2000] [--subs 200000] [--topic-len 24] [--hold 5]
 *                      [--nofile 256] [--model models/commands.kwsm]
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "../tests/kt_proc.h"

#ifndef KWSD_PATH
#define KWSD_PATH "kwsd"
#endif

struct opts {
    int conns, subs, hold_s, nofile, topic_len;
    const char *model;
};

struct phase {
    const char *name;
    long rss_before, rss_peak, rss_after, hwm; /* kB */
    int fds_peak;
    double max_gap_s; /* longest heartbeat gap by kwsd's clock */
    int beats;        /* heartbeats received during the phase */
    int reload_ok;
    double cpu_s;  /* kwsd's user + system CPU time during the phase */
    double wall_s; /* the phase's length, up to the peers' leaving */
};

static char dir[256];
static char endpoint[64];
static pid_t kwsd_pid;
static void *mon; /* heartbeat subscriber */
static double last_uptime = -1.0;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *path_in(const char *name) {
    static char buf[4][400];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* A kB field of /proc/pid/status ("VmRSS:"), or -1. */
static long proc_kb(const char *field) {
    char path[64], line[256];
    long v = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)kwsd_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            v = strtol(line + strlen(field), NULL, 10);
    fclose(f);
    return v;
}

/* kwsd's user + system CPU time so far, in seconds. */
static double proc_cpu_s(void) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)kwsd_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0.0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* fields after the command name */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0.0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Count of lines in kwsd's log that contain s. */
static int log_count(const char *s) {
    FILE *f = fopen(path_in("kwsd.log"), "r");
    char line[1024];
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, s) != NULL;
    fclose(f);
    return n;
}

/* Reads heartbeats for secs seconds, tracking the phase's gaps and RSS. */
static void pump(struct phase *ph, double secs) {
    double end = now_s() + secs;
    while (now_s() < end) {
        zmq_pollitem_t it = {.socket = mon, .events = ZMQ_POLLIN};
        long rss = proc_kb("VmRSS:");
        int fds = kt_proc_fds(kwsd_pid);
        if (ph && rss > ph->rss_peak)
            ph->rss_peak = rss;
        if (ph && fds > ph->fds_peak)
            ph->fds_peak = fds;
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        char topic[64], body[2048];
        int n = zmq_recv(mon, topic, sizeof topic - 1, 0);
        int m = zmq_recv(mon, body, sizeof body - 1, 0);
        if (n <= 0 || m <= 0)
            continue;
        body[m < (int)sizeof body ? m : (int)sizeof body - 1] = '\0';
        json_t *j = json_loads(body, 0, NULL);
        double up = j ? json_number_value(json_object_get(j, "uptime_s")) : 0.0;
        json_decref(j);
        if (ph) {
            ph->beats++;
            if (last_uptime >= 0 && up - last_uptime > ph->max_gap_s)
                ph->max_gap_s = up - last_uptime;
        }
        last_uptime = up;
    }
}

/* SIGHUP, then up to 5 s for a "reloaded" or "reload of ... failed" line. */
static int reload_check(struct phase *ph) {
    int ok0 = log_count("reloaded "), bad0 = log_count("reload of ");
    kill(kwsd_pid, SIGHUP);
    for (int i = 0; i < 50; i++) {
        pump(ph, 0.1);
        if (log_count("reloaded ") > ok0)
            return 1;
        if (log_count("reload of ") > bad0)
            return 0;
    }
    return 0;
}

static pid_t start_kwsd(int nofile) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    char alsa[400];
    snprintf(alsa, sizeof alsa, "/usr/share/alsa/alsa.conf:%s", path_in("asound.conf"));
    setenv("ALSA_CONFIG_PATH", alsa, 1);
    struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        _exit(126);
    int fd = open(path_in("kwsd.log"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(KWSD_PATH, KWSD_PATH, "--config", path_in("kwsd.yaml"), (char *)NULL);
    _exit(127);
}

static void phase_begin(struct phase *ph, const char *name) {
    memset(ph, 0, sizeof *ph);
    ph->name = name;
    pump(NULL, 2.0);
    ph->rss_before = proc_kb("VmRSS:");
    ph->cpu_s = proc_cpu_s();
    ph->wall_s = now_s();
}

static void phase_end(struct phase *ph, void **socks, int n) {
    for (int i = 0; i < n; i++)
        zmq_close(socks[i]);
    ph->cpu_s = proc_cpu_s() - ph->cpu_s; /* up to the peers' leaving */
    ph->wall_s = now_s() - ph->wall_s;
    pump(ph, 10.0); /* kwsd sees the peers leave and trims at a heartbeat */
    ph->rss_after = proc_kb("VmRSS:");
    ph->hwm = proc_kb("VmHWM:");
}

/* The frame phase's peer: a ZMTP 3.0 greeting (NULL mechanism), a READY
 * command as a SUB socket, then a message frame whose header announces
 * 2^30 bytes, followed by zeros for up to secs seconds. Returns the bytes
 * kwsd took before it closed the connection (or the time ran out). */
static long long send_huge_frame(int port, struct phase *ph, double secs) {
    static const uint8_t ready[] = {0x04, 25,  5,   'R', 'E', 'A', 'D', 'Y', 11,
                                    'S',  'o', 'c', 'k', 'e', 't', '-', 'T', 'y',
                                    'p',  'e', 0,   0,   0,   3,   'S', 'U', 'B'};
    uint8_t greet[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    uint8_t head[9] = {0x02, 0, 0, 0, 0x40, 0, 0, 0, 0}; /* long frame, 2^30 bytes */
    static uint8_t zeros[65536];
    long long sent = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        send(fd, greet, sizeof greet, MSG_NOSIGNAL) != (ssize_t)sizeof greet ||
        send(fd, ready, sizeof ready, MSG_NOSIGNAL) != (ssize_t)sizeof ready ||
        send(fd, head, sizeof head, MSG_NOSIGNAL) != (ssize_t)sizeof head) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    double end = now_s() + secs;
    while (now_s() < end) {
        ssize_t n = send(fd, zeros, sizeof zeros, MSG_NOSIGNAL);
        if (n > 0)
            sent += n;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            break; /* kwsd closed the connection */
        else
            pump(ph, 0.01);
    }
    close(fd);
    return sent;
}

static void print_phase(const struct phase *ph) {
    printf("| %s | %.1f | %.1f | %.1f | %.1f | %d | %.1f in %.1f | %d | %.2f | %s |\n", ph->name,
           ph->rss_before / 1024.0, ph->rss_peak / 1024.0, ph->rss_after / 1024.0, ph->hwm / 1024.0,
           ph->fds_peak, ph->cpu_s, ph->wall_s, ph->beats, ph->max_gap_s,
           ph->reload_ok ? "yes" : "NO");
}

/* A count in [0, 10^7], or -1. */
static int parse_count(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || end == s || *end || v < 0 || v > 10000000 ? -1 : (int)v;
}

static void usage(void) {
    fprintf(stderr, "usage: kwsd-bench-peers [--conns N] [--subs N] [--topic-len 24..500] "
                    "[--hold S] [--nofile N] [--model FILE]\n");
    exit(2);
}

/* The command line into o; a bad one prints the usage and exits with 2.
 * Returns nothing. */
static void parse_opts(int argc, char **argv, struct opts *o) {
    static const struct option lo[] = {
        {"conns", 1, 0, 'c'}, {"subs", 1, 0, 's'},      {"hold", 1, 0, 'h'}, {"nofile", 1, 0, 'n'},
        {"model", 1, 0, 'm'}, {"topic-len", 1, 0, 't'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->conns = parse_count(optarg);
            break;
        case 's':
            o->subs = parse_count(optarg);
            break;
        case 'h':
            o->hold_s = parse_count(optarg);
            break;
        case 'n':
            o->nofile = parse_count(optarg);
            break;
        case 'm':
            o->model = optarg;
            break;
        case 't':
            o->topic_len = parse_count(optarg);
            break;
        default:
            usage();
        }
    }
    if (o->conns < 0 || o->subs < 0 || o->hold_s < 1 || o->nofile < 32 || o->topic_len < 24 ||
        o->topic_len > 500)
        usage();
}

/* Raises the bench's own descriptor limit, makes the scratch directory with
 * the noise, the ALSA configuration and kwsd.yaml, and picks the endpoint.
 * Returns the endpoint's port, or -1 if the directory or noise failed. */
static int set_up(const struct opts *o) {
    /* The bench itself holds o->conns sockets, each a connection and a mailbox. */
    struct rlimit rl = {(rlim_t)o->conns * 3 + 1024, (rlim_t)o->conns * 3 + 1024};
    setrlimit(RLIMIT_NOFILE, &rl);
    snprintf(dir, sizeof dir, "/tmp/kwsd-bench-peers-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    int port = 20000 + (int)(getpid() % 20000);
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    char text[2048], cmd[600];
    snprintf(cmd, sizeof cmd,
             "sox -R -n -r 16000 -c 1 -b 16 -e signed -t raw %s/noise.raw synth 10 whitenoise "
             "vol 0.01",
             dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(text, sizeof text,
             "pcm.testmic {\n type file\n slave.pcm null\n file /dev/null\n"
             " infile \"%s/noise.raw\"\n format raw\n}\n",
             dir);
    write_text(path_in("asound.conf"), text);
    snprintf(text, sizeof text,
             "audio:\n  device: testmic\n  rate: 16000\nmodel:\n  path: %s\n"
             "transport:\n  endpoints: [ \"%s\" ]\n  heartbeat_s: 1\nlogging:\n  level: info\n",
             o->model, endpoint);
    write_text(path_in("kwsd.yaml"), text);
    return port;
}

/* Connects the heartbeat subscriber, starts kwsd, lets it settle for 3 s
 * and prints its starting state. Returns the ZeroMQ context of the peers. */
static void *start_watching(const struct opts *o) {
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, o->conns + 64);
    mon = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(mon, ZMQ_SUBSCRIBE, "kws.status", 10);
    zmq_connect(mon, endpoint);
    kwsd_pid = start_kwsd(o->nofile);
    pump(NULL, 3.0);
    printf("kwsd %d, LimitNOFILE %d, endpoint %s, %d open descriptors, RSS %.1f MiB\n",
           (int)kwsd_pid, o->nofile, endpoint, kt_proc_fds(kwsd_pid), proc_kb("VmRSS:") / 1024.0);
    return ctx;
}

/* The conns phase: o->conns SUB peers, one subscription each, held, then a
 * reload, then closed. Returns nothing; the measures go to ph. */
static void phase_conns(struct phase *ph, const char *name, void *ctx, void **socks,
                        const struct opts *o) {
    int zero = 0;
    phase_begin(ph, name);
    int opened = 0;
    for (int i = 0; i < o->conns; i++) {
        char topic[64];
        socks[i] = zmq_socket(ctx, ZMQ_SUB);
        if (!socks[i])
            break;
        zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
        snprintf(topic, sizeof topic, "kws.detection.peer%d", i);
        zmq_setsockopt(socks[i], ZMQ_SUBSCRIBE, topic, strlen(topic));
        zmq_connect(socks[i], endpoint);
        opened++;
        if (i % 100 == 99)
            pump(ph, 0.05);
    }
    pump(ph, (double)o->hold_s);
    ph->reload_ok = reload_check(ph);
    phase_end(ph, socks, opened);
}

/* The subs phase: one SUB peer sends o->subs distinct subscriptions of
 * o->topic_len bytes, held, then a reload, then closed. Returns nothing;
 * the measures go to ph. */
static void phase_subs(struct phase *ph, const char *name, void *ctx, void **socks,
                       const struct opts *o) {
    int zero = 0;
    phase_begin(ph, name);
    socks[0] = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(socks[0], ZMQ_LINGER, &zero, sizeof zero);
    /* no send high-water mark: libzmq would drop subscriptions past it */
    zmq_setsockopt(socks[0], ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_connect(socks[0], endpoint);
    pump(ph, 0.5);
    for (int i = 0; i < o->subs; i++) {
        char topic[512];
        /* distinct from the first bytes on, padded to topic_len */
        int n = snprintf(topic, sizeof topic, "kws.detection.t%08d", i);
        memset(topic + n, 'x', (size_t)(o->topic_len - n));
        zmq_setsockopt(socks[0], ZMQ_SUBSCRIBE, topic, (size_t)o->topic_len);
        if (i % 10000 == 9999)
            pump(ph, 0.05);
    }
    pump(ph, (double)o->hold_s);
    ph->reload_ok = reload_check(ph);
    phase_end(ph, socks, 1);
}

/* The frame phase: the hand-made peer announces a 1 GiB frame for
 * o->hold_s seconds, then a reload; prints how much kwsd took. Returns
 * nothing; the measures go to ph. */
static void phase_frame(struct phase *ph, const char *name, int port, void **socks,
                        const struct opts *o) {
    phase_begin(ph, name);
    long long took = send_huge_frame(port, ph, (double)o->hold_s);
    ph->reload_ok = reload_check(ph);
    phase_end(ph, socks, 0);
    printf("1 GiB frame: kwsd took %lld bytes of it before closing the connection%s\n", took,
           took < 0 ? " (could not connect)" : "");
}

/* Prints the phases' table and the count of descriptor shortages in kwsd's
 * log. Returns nothing. */
static void print_report(const struct phase *ph, int n) {
    printf("\n| phase | RSS before MiB | RSS peak MiB | RSS after MiB | VmHWM MiB | fds peak | "
           "CPU s in wall s | heartbeats | longest gap s | reload |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++)
        print_phase(&ph[i]);
    printf("\n(heartbeat every 1 s; kwsd log lines with \"Too many open files\": %d)\n",
           log_count("Too many open files"));
}

/* Stops kwsd with SIGTERM, closes the subscriber and the context and
 * removes the scratch directory. Returns the exit code: 0 if kwsd exited
 * with 0, else 1. */
static int stop_and_clean(void *ctx) {
    char cmd[600];
    kill(kwsd_pid, SIGTERM);
    int status = 0;
    waitpid(kwsd_pid, &status, 0);
    zmq_close(mon);
    zmq_ctx_term(ctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    struct opts o = {2000, 200000, 5, 256, 24, KWSD_SOURCE_DIR "/models/commands.kwsm"};
    parse_opts(argc, argv, &o);
    int port = set_up(&o);
    if (port < 0)
        return 1;
    void *ctx = start_watching(&o);

    struct phase ph[3];
    char name[3][64];
    void **socks = calloc((size_t)(o.conns ? o.conns : 1), sizeof *socks);
    snprintf(name[0], sizeof name[0], "%d connections", o.conns);
    phase_conns(&ph[0], name[0], ctx, socks, &o);
    snprintf(name[1], sizeof name[1], "%d subscriptions, one peer", o.subs);
    phase_subs(&ph[1], name[1], ctx, socks, &o);
    snprintf(name[2], sizeof name[2], "a 1 GiB frame announced");
    phase_frame(&ph[2], name[2], port, socks, &o);

    print_report(ph, 3);
    int rc = stop_and_clean(ctx);
    free(socks);
    return rc;
}

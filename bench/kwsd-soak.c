/* kwsd-soak.c: runs the real kwsd over an hour of speech and noise and measures it.
 *
 * Builds a long 16 kHz recording from a Speech Commands style data set's
 * split: every clip of the split (keywords and other words, not silence) at
 * a random place between stretches of the set's _silence_ noise, shuffled
 * and repeated until the requested length. It writes that recording as a
 * WAV, starts the built kwsd on it (`kwsd --input`, which runs the whole
 * daemon: front end, network, detector, ZeroMQ), subscribes to its events
 * like any client, and reports:
 *   - kwsd's CPU time (user + system, from wait4) as a share of the audio's
 *     duration, and its peak RSS;
 *   - hit rate, false alarms per hour, and latency from the end of the
 *     spoken word (energy-based, per clip) to the event's end_ms.
 *
 *     kwsd-soak --data ../shared/datasets/speech_commands --model models/commands.kwsm \
 *               --minutes 60 [--split testing] [--threshold 0.8] [--json]
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "kws/audio_file.h"

#define RATE 16000

extern char **environ;
#define MAX_CLIPS 20000
#define MAX_EVENTS 100000

struct clip {
    char label[32];
    float *x;
    size_t n;
    size_t word_lo, word_hi; /* samples of the clip holding the word */
};

struct truth {
    int clip;
    int64_t start_ms, end_ms; /* the word, in stream time */
    int hit;
};

struct event {
    char label[32];
    int64_t end_ms;
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static double rng_uniform(double lo, double hi) {
    return lo + (hi - lo) * ((double)rng() / 4294967296.0);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("kwsd-soak: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* The word inside a clip: from the first to the last 10 ms frame whose RMS
 * is within 20 dB of the clip's loudest frame. */
static void find_word(struct clip *c) {
    const size_t hop = RATE / 100;
    double peak = 0.0;
    size_t nf = c->n / hop, lo = 0, hi = 0;
    int found = 0;

    for (size_t f = 0; f < nf; f++) {
        double e = 0.0;
        for (size_t i = 0; i < hop; i++)
            e += (double)c->x[f * hop + i] * c->x[f * hop + i];
        if (e > peak)
            peak = e;
    }
    for (size_t f = 0; f < nf; f++) {
        double e = 0.0;
        for (size_t i = 0; i < hop; i++)
            e += (double)c->x[f * hop + i] * c->x[f * hop + i];
        if (e >= peak * 0.01) {
            if (!found)
                lo = f;
            hi = f + 1;
            found = 1;
        }
    }
    c->word_lo = lo * hop;
    c->word_hi = hi * hop;
}

static int load_clip(struct clip *c, const char *root, const char *rel) {
    char path[1024], msg[256];
    int native;
    const char *slash = strchr(rel, '/');

    if (!slash || (size_t)(slash - rel) >= sizeof c->label)
        return -1;
    memcpy(c->label, rel, (size_t)(slash - rel));
    c->label[slash - rel] = '\0';
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (audio_file_read(path, RATE, &c->x, &c->n, &native, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd-soak: %s\n", msg);
        return -1;
    }
    find_word(c);
    return 0;
}

static int write_wav(const char *path, const float *x, size_t n) {
    SF_INFO info = {.samplerate = RATE, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    if (!f)
        return -1;
    sf_count_t w = sf_write_float(f, x, (sf_count_t)n);
    sf_close(f);
    return w == (sf_count_t)n ? 0 : -1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int is_keyword(const char *label) {
    return label[0] != '_';
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},      {"model", required_argument, NULL, 'm'},
        {"minutes", required_argument, NULL, 'n'},   {"split", required_argument, NULL, 's'},
        {"threshold", required_argument, NULL, 't'}, {"kwsd", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},            {"seed", required_argument, NULL, 'r'},
        {"noise-gain", required_argument, NULL, 'g'}, {"smoothing-ms", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL, *model = NULL, *split = "testing", *kwsd = KWSD_PATH;
    double minutes = 60.0, threshold = -1.0, noise_gain = 0.3;
    int smoothing_ms = 0;
    int json = 0, opt;
    char dir[] = "/tmp/kwsd-soak-XXXXXX", path[1024], line[512];

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': data = optarg; break;
        case 'm': model = optarg; break;
        case 'n': minutes = strtod(optarg, NULL); break;
        case 's': split = optarg; break;
        case 't': threshold = strtod(optarg, NULL); break;
        case 'k': kwsd = optarg; break;
        case 'j': json = 1; break;
        case 'r': rng_state = strtoull(optarg, NULL, 10) * 2654435761ull + 1; break;
        case 'g': noise_gain = strtod(optarg, NULL); break;
        case 'w': smoothing_ms = (int)strtol(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: kwsd-soak --data DIR --model FILE [--minutes M] [--split "
                            "testing|validation] [--threshold T] [--smoothing-ms MS] [--noise-gain G] "
                            "[--json]\n");
            return 2;
        }
    }
    if (!data || !model || minutes <= 0.0)
        die("--data and --model are required (see --help)");

    /* ==== The split's clips and the noise ==== */
    static struct clip clips[MAX_CLIPS];
    int n_clips = 0, n_noise = 0;
    static struct clip noise[512];
    snprintf(path, sizeof path, "%s/%s_list.txt", data, split);
    FILE *lf = fopen(path, "r");
    if (!lf)
        die("%s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, lf) && n_clips < MAX_CLIPS) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || strncmp(line, "_silence_/", 10) == 0)
            continue;
        if (load_clip(&clips[n_clips], data, line) == 0)
            n_clips++;
    }
    fclose(lf);
    /* Noise: every _silence_ clip of the data set. */
    snprintf(path, sizeof path, "ls %s/_silence_/ 2>/dev/null", data);
    FILE *ls = popen(path, "r");
    while (ls && fgets(line, sizeof line, ls) && n_noise < 512) {
        char rel[600];
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(rel, sizeof rel, "_silence_/%s", line);
        if (load_clip(&noise[n_noise], data, rel) == 0)
            n_noise++;
    }
    if (ls)
        pclose(ls);
    if (n_clips == 0 || n_noise == 0)
        die("%s: no clips or no _silence_ noise found", data);

    /* ==== The long recording ==== */
    size_t total = (size_t)(minutes * 60.0 * RATE);
    float *x = calloc(total, sizeof(float));
    struct truth *truth = calloc(MAX_CLIPS * 8, sizeof *truth);
    int n_truth = 0;
    if (!x || !truth)
        die("out of memory");
    for (size_t pos = 0; pos < total;) { /* noise bed, each piece at its own level */
        struct clip *nc = &noise[rng() % (uint32_t)n_noise];
        float g = (float)(noise_gain * rng_uniform(0.2, 1.0));
        for (size_t i = 0; i < nc->n && pos < total; i++, pos++)
            x[pos] = g * nc->x[i];
    }
    int *order = malloc((size_t)n_clips * sizeof(int));
    int oi = n_clips;
    size_t pos = RATE; /* one second of noise first */
    while (n_truth < MAX_CLIPS * 8) {
        if (oi == n_clips) { /* a new shuffled pass over the split */
            for (int i = 0; i < n_clips; i++)
                order[i] = i;
            for (int i = n_clips - 1; i > 0; i--) {
                int j = (int)(rng() % (uint32_t)(i + 1)), t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            oi = 0;
        }
        struct clip *c = &clips[order[oi]];
        size_t gap = (size_t)(rng_uniform(1.5, 4.0) * RATE);
        if (pos + c->n + gap + RATE > total)
            break;
        for (size_t i = 0; i < c->n; i++)
            x[pos + i] += c->x[i];
        truth[n_truth].clip = order[oi];
        truth[n_truth].start_ms = (int64_t)((pos + c->word_lo) * 1000 / RATE);
        truth[n_truth].end_ms = (int64_t)((pos + c->word_hi) * 1000 / RATE);
        n_truth++;
        oi++;
        pos += c->n + gap;
    }
    for (size_t i = 0; i < total; i++) /* keep the mix inside [-1, 1) */
        x[i] = x[i] > 0.999f ? 0.999f : x[i] < -1.0f ? -1.0f : x[i];

    if (!mkdtemp(dir))
        die("mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/soak.wav", dir);
    if (write_wav(path, x, total) < 0)
        die("%s: cannot write", path);
    free(x);

    /* ==== kwsd on the recording, with a subscriber ==== */
    char cfg[1024], endpoint[300];
    snprintf(endpoint, sizeof endpoint, "ipc://%s/events", dir);
    snprintf(cfg, sizeof cfg, "%s/kwsd.yaml", dir);
    FILE *cf = fopen(cfg, "w");
    if (!cf)
        die("%s: %s", cfg, strerror(errno));
    fprintf(cf, "model:\n  path: %s\ntransport:\n  endpoints: [ \"%s\" ]\n  queue: 100000\n",
            model, endpoint);
    if (threshold >= 0.0 || smoothing_ms > 0)
        fprintf(cf, "detection:\n");
    if (threshold >= 0.0)
        fprintf(cf, "  threshold: %g\n", threshold);
    if (smoothing_ms > 0)
        fprintf(cf, "  smoothing_ms: %d\n", smoothing_ms);
    fprintf(cf, "logging:\n  level: notice\n");
    fclose(cf);

    void *zctx = zmq_ctx_new(), *sub = zmq_socket(zctx, ZMQ_SUB);
    int hwm = 0;
    zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "kws.detection.", 14);
    /* kwsd binds; connecting first is fine for ipc (libzmq retries). kwsd
     * reads the file a second after start-up (--input-delay), long after the
     * subscription has reached it, then runs far faster than real time. */
    if (zmq_connect(sub, endpoint) < 0)
        die("connect %s: %s", endpoint, zmq_strerror(errno));

    /* kwsd's log (stderr) goes to a file: its last line gives its peak RSS. */
    char wav[1100], log[1100];
    snprintf(wav, sizeof wav, "%s/soak.wav", dir);
    snprintf(log, sizeof log, "%s/kwsd.log", dir);
    char *const args[] = {(char *)kwsd, "--config",    cfg,   "--input", wav, "--input-delay",
                          "1000",       "--log-level", "info", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    if (posix_spawn(&pid, kwsd, &fa, NULL, args, environ) != 0)
        die("cannot start %s", kwsd);
    posix_spawn_file_actions_destroy(&fa);
    static struct event ev[MAX_EVENTS];
    int n_ev = 0, status = 0;
    struct rusage ru;
    int done = 0;
    while (!done || 1) {
        zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 200) > 0) {
            char topic[128], body[4096];
            int n = zmq_recv(sub, topic, sizeof topic - 1, 0);
            int m = zmq_recv(sub, body, sizeof body - 1, 0);
            if (n > 0 && m > 0 && n_ev < MAX_EVENTS) {
                body[m] = '\0';
                json_t *j = json_loads(body, 0, NULL);
                if (j) {
                    snprintf(ev[n_ev].label, sizeof ev[n_ev].label, "%s",
                             json_string_value(json_object_get(j, "keyword")));
                    ev[n_ev].end_ms = json_integer_value(json_object_get(j, "end_ms"));
                    n_ev++;
                    json_decref(j);
                }
            }
            continue;
        }
        if (done)
            break;
        if (wait4(pid, &status, WNOHANG, &ru) == pid)
            done = 1; /* one more quiet poll round drains what is in flight */
    }
    zmq_close(sub);
    zmq_ctx_term(zctx);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("kwsd exited with status %d (log: %s)", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            log);
    long peak_kib = -1;
    int logged = 0;
    FILE *klog = fopen(log, "r");
    while (klog && fgets(line, sizeof line, klog)) {
        const char *p = strstr(line, "peak RSS ");
        if (p)
            peak_kib = strtol(p + 9, NULL, 10);
        logged += strstr(line, ": detected \"") != NULL;
    }
    if (logged != n_ev)
        die("kwsd logged %d detections but the subscriber received %d", logged, n_ev);
    if (klog)
        fclose(klog);

    /* ==== Scoring ==== */
    int hits = 0, n_fa = 0, n_kw = 0, n_confused = 0;
    int64_t *lat = malloc((size_t)(n_ev + 1) * sizeof(int64_t));
    for (int t = 0; t < n_truth; t++)
        n_kw += is_keyword(clips[truth[t].clip].label);
    for (int e = 0; e < n_ev; e++) {
        int matched = 0;
        for (int t = 0; t < n_truth; t++) {
            const struct clip *c = &clips[truth[t].clip];
            if (truth[t].hit || strcmp(c->label, ev[e].label) != 0)
                continue;
            if (ev[e].end_ms >= truth[t].start_ms && ev[e].end_ms <= truth[t].end_ms + 1500) {
                truth[t].hit = 1;
                lat[hits++] = ev[e].end_ms - truth[t].end_ms;
                matched = 1;
                break;
            }
        }
        if (!matched) {
            n_fa++;
            /* A false alarm during some word (another label, or an
             * _unknown_ word) is a confusion; elsewhere it fired on noise. */
            for (int t = 0; t < n_truth; t++)
                if (ev[e].end_ms >= truth[t].start_ms && ev[e].end_ms <= truth[t].end_ms + 1500) {
                    n_confused++;
                    break;
                }
        }
    }
    qsort(lat, (size_t)hits, sizeof *lat, cmp_i64);
    double audio_s = minutes * 60.0;
    double cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    int64_t p50 = hits ? lat[hits / 2] : 0, p90 = hits ? lat[(hits * 9) / 10] : 0;

    if (json) {
        printf("{\"audio_s\": %.1f, \"keywords\": %d, \"other_words\": %d, \"events\": %d, "
               "\"hits\": %d, \"hit_rate\": %.4f, \"false_alarms\": %d, "
               "\"false_alarms_per_hour\": %.2f, \"false_alarms_on_words\": %d, \"latency_ms_p50\": %lld, "
               "\"latency_ms_p90\": %lld, \"cpu_s\": %.3f, \"cpu_share\": %.5f, "
               "\"peak_rss_kib\": %ld}\n",
               audio_s, n_kw, n_truth - n_kw, n_ev, hits, n_kw ? (double)hits / n_kw : 0.0, n_fa,
               n_fa / (audio_s / 3600.0), n_confused, (long long)p50, (long long)p90, cpu_s, cpu_s / audio_s,
               peak_kib);
    } else {
        printf("audio            %.1f s (%d keywords, %d other words, noise between)\n", audio_s,
               n_kw, n_truth - n_kw);
        printf("events           %d\n", n_ev);
        printf("hit rate         %.1f %% (%d of %d)\n", n_kw ? 100.0 * hits / n_kw : 0.0, hits,
               n_kw);
        printf("false alarms     %d (%.1f per hour): %d on another word, %d on noise\n", n_fa,
               n_fa / (audio_s / 3600.0), n_confused, n_fa - n_confused);
        printf("latency          p50 %lld ms, p90 %lld ms after the word's end\n",
               (long long)p50, (long long)p90);
        printf("kwsd CPU         %.2f s = %.3f %% of real time\n", cpu_s, 100.0 * cpu_s / audio_s);
        printf("kwsd peak RSS    %ld KiB\n", peak_kib);
    }
    snprintf(line, sizeof line, "rm -rf %s", dir);
    if (system(line) != 0)
        fprintf(stderr, "kwsd-soak: cannot remove %s\n", dir);
    return 0;
}

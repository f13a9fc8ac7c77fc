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

/* ==== The steps of main ==== */

struct soak_opts {
    const char *data, *model, *split, *kwsd;
    double minutes;    /* length of the recording */
    double threshold;  /* detection.threshold, or < 0 for kwsd's default */
    double noise_gain; /* loudest level of the noise bed */
    int smoothing_ms;  /* detection.smoothing_ms, or 0 for kwsd's default */
    int json;
};

/* The loaded clips, the recording's ground truth and the events received. */
struct soak {
    struct clip *clips; /* (MAX_CLIPS) the split's words */
    int n_clips;
    struct clip *noise; /* (512) the _silence_ clips */
    int n_noise;
    struct truth *truth; /* (MAX_CLIPS * 8) the words placed, in stream order */
    int n_truth;
    struct event *ev; /* (MAX_EVENTS) the detections received */
    int n_ev;
};

/* What scoring found, in the units printed. */
struct score {
    int n_kw, hits, n_fa, n_confused;
    int64_t p50, p90; /* latency, ms after the word's end */
    double audio_s;   /* length of the recording */
    double cpu_s;     /* kwsd's user + system CPU time */
    long peak_kib;    /* kwsd's peak RSS, from its last log line */
};

/* The command line into o (--seed seeds the generator here). Returns -1
 * to go on, or 2 after printing the usage for an unknown option; dies
 * without --data or --model. */
static int parse_opts(int argc, char **argv, struct soak_opts *o) {
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"model", required_argument, NULL, 'm'},
        {"minutes", required_argument, NULL, 'n'},
        {"split", required_argument, NULL, 's'},
        {"threshold", required_argument, NULL, 't'},
        {"kwsd", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},
        {"seed", required_argument, NULL, 'r'},
        {"noise-gain", required_argument, NULL, 'g'},
        {"smoothing-ms", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    *o = (struct soak_opts){.split = "testing",
                            .kwsd = KWSD_PATH,
                            .minutes = 60.0,
                            .threshold = -1.0,
                            .noise_gain = 0.3};
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            o->data = optarg;
            break;
        case 'm':
            o->model = optarg;
            break;
        case 'n':
            o->minutes = strtod(optarg, NULL);
            break;
        case 's':
            o->split = optarg;
            break;
        case 't':
            o->threshold = strtod(optarg, NULL);
            break;
        case 'k':
            o->kwsd = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'r':
            rng_state = strtoull(optarg, NULL, 10) * 2654435761ull + 1;
            break;
        case 'g':
            o->noise_gain = strtod(optarg, NULL);
            break;
        case 'w':
            o->smoothing_ms = (int)strtol(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr,
                    "usage: kwsd-soak --data DIR --model FILE [--minutes M] [--split "
                    "testing|validation] [--threshold T] [--smoothing-ms MS] [--noise-gain G] "
                    "[--json]\n");
            return 2;
        }
    }
    if (!o->data || !o->model || o->minutes <= 0.0)
        die("--data and --model are required (see --help)");
    return -1;
}

/* Loads every clip of the split's list except _silence_ ones, then every
 * _silence_ clip as noise, into s. Returns nothing; dies if either is
 * missing. */
static void load_split(struct soak *s, const struct soak_opts *o) {
    char path[1024], line[512];
    snprintf(path, sizeof path, "%s/%s_list.txt", o->data, o->split);
    FILE *lf = fopen(path, "r");
    if (!lf)
        die("%s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, lf) && s->n_clips < MAX_CLIPS) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || strncmp(line, "_silence_/", 10) == 0)
            continue;
        if (load_clip(&s->clips[s->n_clips], o->data, line) == 0)
            s->n_clips++;
    }
    fclose(lf);
    /* Noise: every _silence_ clip of the data set. */
    snprintf(path, sizeof path, "ls %s/_silence_/ 2>/dev/null", o->data);
    FILE *ls = popen(path, "r");
    while (ls && fgets(line, sizeof line, ls) && s->n_noise < 512) {
        char rel[600];
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(rel, sizeof rel, "_silence_/%s", line);
        if (load_clip(&s->noise[s->n_noise], o->data, rel) == 0)
            s->n_noise++;
    }
    if (ls)
        pclose(ls);
    if (s->n_clips == 0 || s->n_noise == 0)
        die("%s: no clips or no _silence_ noise found", o->data);
}

/* Mixes the long recording: a noise bed, then the clips in shuffled passes
 * with random gaps, each placed word noted in s->truth. Returns the
 * recording (*total samples, to be freed by the caller); dies out of
 * memory. */
static float *make_recording(struct soak *s, const struct soak_opts *o, size_t *total) {
    const size_t n = (size_t)(o->minutes * 60.0 * RATE);
    float *x = calloc(n, sizeof(float));
    s->truth = calloc(MAX_CLIPS * 8, sizeof *s->truth);
    if (!x || !s->truth)
        die("out of memory");
    for (size_t pos = 0; pos < n;) { /* noise bed, each piece at its own level */
        struct clip *nc = &s->noise[rng() % (uint32_t)s->n_noise];
        float g = (float)(o->noise_gain * rng_uniform(0.2, 1.0));
        for (size_t i = 0; i < nc->n && pos < n; i++, pos++)
            x[pos] = g * nc->x[i];
    }
    int *order = malloc((size_t)s->n_clips * sizeof(int));
    int oi = s->n_clips;
    size_t pos = RATE; /* one second of noise first */
    while (s->n_truth < MAX_CLIPS * 8) {
        if (oi == s->n_clips) { /* a new shuffled pass over the split */
            for (int i = 0; i < s->n_clips; i++)
                order[i] = i;
            for (int i = s->n_clips - 1; i > 0; i--) {
                int j = (int)(rng() % (uint32_t)(i + 1)), t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            oi = 0;
        }
        struct clip *c = &s->clips[order[oi]];
        size_t gap = (size_t)(rng_uniform(1.5, 4.0) * RATE);
        if (pos + c->n + gap + RATE > n)
            break;
        for (size_t i = 0; i < c->n; i++)
            x[pos + i] += c->x[i];
        struct truth *t = &s->truth[s->n_truth++];
        t->clip = order[oi];
        t->start_ms = (int64_t)((pos + c->word_lo) * 1000 / RATE);
        t->end_ms = (int64_t)((pos + c->word_hi) * 1000 / RATE);
        oi++;
        pos += c->n + gap;
    }
    free(order);
    for (size_t i = 0; i < n; i++) /* keep the mix inside [-1, 1) */
        x[i] = x[i] > 0.999f ? 0.999f : x[i] < -1.0f ? -1.0f : x[i];
    *total = n;
    return x;
}

/* Writes kwsd's configuration to cfg: the model, the endpoint, the
 * detection settings given and notice-level logging. Returns nothing; dies
 * if the file cannot be made. */
static void write_config(const char *cfg, const char *endpoint, const struct soak_opts *o) {
    FILE *cf = fopen(cfg, "w");
    if (!cf)
        die("%s: %s", cfg, strerror(errno));
    fprintf(cf, "model:\n  path: %s\ntransport:\n  endpoints: [ \"%s\" ]\n  queue: 100000\n",
            o->model, endpoint);
    if (o->threshold >= 0.0 || o->smoothing_ms > 0)
        fprintf(cf, "detection:\n");
    if (o->threshold >= 0.0)
        fprintf(cf, "  threshold: %g\n", o->threshold);
    if (o->smoothing_ms > 0)
        fprintf(cf, "  smoothing_ms: %d\n", o->smoothing_ms);
    fprintf(cf, "logging:\n  level: notice\n");
    fclose(cf);
}

/* Starts kwsd on dir's recording with configuration cfg, its stderr to log.
 * Returns its pid; dies if it cannot be started. */
static pid_t spawn_kwsd(const char *kwsd, const char *dir, char *cfg, const char *log) {
    char wav[1100];
    snprintf(wav, sizeof wav, "%s/soak.wav", dir);
    char *const args[] = {(char *)kwsd,    "--config", cfg,           "--input", wav,
                          "--input-delay", "1000",     "--log-level", "info",    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    if (posix_spawn(&pid, kwsd, &fa, NULL, args, environ) != 0)
        die("cannot start %s", kwsd);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* Receives kwsd's detections on sub into s->ev until kwsd has exited and
 * one more quiet poll round has drained what was in flight. Returns kwsd's
 * wait status; its resource use goes to *ru. */
static int collect_events(void *sub, pid_t pid, struct soak *s, struct rusage *ru) {
    int status = 0, done = 0;
    while (!done || 1) {
        zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 200) > 0) {
            char topic[128], body[4096];
            int n = zmq_recv(sub, topic, sizeof topic - 1, 0);
            int m = zmq_recv(sub, body, sizeof body - 1, 0);
            if (n > 0 && m > 0 && s->n_ev < MAX_EVENTS) {
                body[m] = '\0';
                json_t *j = json_loads(body, 0, NULL);
                if (j) {
                    struct event *e = &s->ev[s->n_ev];
                    snprintf(e->label, sizeof e->label, "%s",
                             json_string_value(json_object_get(j, "keyword")));
                    e->end_ms = json_integer_value(json_object_get(j, "end_ms"));
                    s->n_ev++;
                    json_decref(j);
                }
            }
            continue;
        }
        if (done)
            break;
        if (wait4(pid, &status, WNOHANG, ru) == pid)
            done = 1; /* one more quiet poll round drains what is in flight */
    }
    return status;
}

/* Runs kwsd on dir's recording with a subscriber to its detections, which
 * go to s->ev. Returns nothing; kwsd's CPU time and peak RSS go to sc. Dies
 * if kwsd fails, or if its log counts other detections than arrived. */
static void run_kwsd(struct soak *s, const struct soak_opts *o, const char *dir, struct score *sc) {
    char cfg[1024], endpoint[300], log[1100], line[512];
    snprintf(endpoint, sizeof endpoint, "ipc://%s/events", dir);
    snprintf(cfg, sizeof cfg, "%s/kwsd.yaml", dir);
    write_config(cfg, endpoint, o);

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
    snprintf(log, sizeof log, "%s/kwsd.log", dir);
    pid_t pid = spawn_kwsd(o->kwsd, dir, cfg, log);
    struct rusage ru;
    int status = collect_events(sub, pid, s, &ru);
    zmq_close(sub);
    zmq_ctx_term(zctx);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("kwsd exited with status %d (log: %s)", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            log);
    sc->peak_kib = -1;
    int logged = 0;
    FILE *klog = fopen(log, "r");
    while (klog && fgets(line, sizeof line, klog)) {
        const char *p = strstr(line, "peak RSS ");
        if (p)
            sc->peak_kib = strtol(p + 9, NULL, 10);
        logged += strstr(line, ": detected \"") != NULL;
    }
    if (logged != s->n_ev)
        die("kwsd logged %d detections but the subscriber received %d", logged, s->n_ev);
    if (klog)
        fclose(klog);
    sc->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Matches each event to the first unhit word of its label that it ends
 * within (from the word's start to 1.5 s after its end); the rest are false
 * alarms, on a word or on noise. Returns nothing; the counts and latency
 * percentiles go to sc. */
static void score_events(struct soak *s, struct score *sc) {
    int64_t *lat = malloc((size_t)(s->n_ev + 1) * sizeof(int64_t));
    for (int t = 0; t < s->n_truth; t++)
        sc->n_kw += is_keyword(s->clips[s->truth[t].clip].label);
    for (int e = 0; e < s->n_ev; e++) {
        const struct event *ev = &s->ev[e];
        int matched = 0;
        for (int t = 0; t < s->n_truth; t++) {
            struct truth *tr = &s->truth[t];
            if (tr->hit || strcmp(s->clips[tr->clip].label, ev->label) != 0)
                continue;
            if (ev->end_ms >= tr->start_ms && ev->end_ms <= tr->end_ms + 1500) {
                tr->hit = 1;
                lat[sc->hits++] = ev->end_ms - tr->end_ms;
                matched = 1;
                break;
            }
        }
        if (!matched) {
            sc->n_fa++;
            /* A false alarm during some word (another label, or an
             * _unknown_ word) is a confusion; elsewhere it fired on noise. */
            for (int t = 0; t < s->n_truth; t++)
                if (ev->end_ms >= s->truth[t].start_ms && ev->end_ms <= s->truth[t].end_ms + 1500) {
                    sc->n_confused++;
                    break;
                }
        }
    }
    qsort(lat, (size_t)sc->hits, sizeof *lat, cmp_i64);
    sc->p50 = sc->hits ? lat[sc->hits / 2] : 0;
    sc->p90 = sc->hits ? lat[(sc->hits * 9) / 10] : 0;
    free(lat);
}

/* Prints the score as one JSON line (--json). Returns nothing. */
static void print_json(const struct soak *s, const struct score *sc) {
    const double audio_s = sc->audio_s, cpu_s = sc->cpu_s;
    const int n_kw = sc->n_kw, hits = sc->hits, n_fa = sc->n_fa;
    printf(
        "{\"audio_s\": %.1f, \"keywords\": %d, \"other_words\": %d, \"events\": %d, "
        "\"hits\": %d, \"hit_rate\": %.4f, \"false_alarms\": %d, "
        "\"false_alarms_per_hour\": %.2f, \"false_alarms_on_words\": %d, \"latency_ms_p50\": %lld, "
        "\"latency_ms_p90\": %lld, \"cpu_s\": %.3f, \"cpu_share\": %.5f, "
        "\"peak_rss_kib\": %ld}\n",
        audio_s, n_kw, s->n_truth - n_kw, s->n_ev, hits, n_kw ? (double)hits / n_kw : 0.0, n_fa,
        n_fa / (audio_s / 3600.0), sc->n_confused, (long long)sc->p50, (long long)sc->p90, cpu_s,
        cpu_s / audio_s, sc->peak_kib);
}

/* Prints the score as lines for a reader. Returns nothing. */
static void print_text(const struct soak *s, const struct score *sc) {
    const double audio_s = sc->audio_s, cpu_s = sc->cpu_s;
    const int n_kw = sc->n_kw, hits = sc->hits, n_fa = sc->n_fa;
    printf("audio            %.1f s (%d keywords, %d other words, noise between)\n", audio_s, n_kw,
           s->n_truth - n_kw);
    printf("events           %d\n", s->n_ev);
    printf("hit rate         %.1f %% (%d of %d)\n", n_kw ? 100.0 * hits / n_kw : 0.0, hits, n_kw);
    printf("false alarms     %d (%.1f per hour): %d on another word, %d on noise\n", n_fa,
           n_fa / (audio_s / 3600.0), sc->n_confused, n_fa - sc->n_confused);
    printf("latency          p50 %lld ms, p90 %lld ms after the word's end\n", (long long)sc->p50,
           (long long)sc->p90);
    printf("kwsd CPU         %.2f s = %.3f %% of real time\n", cpu_s, 100.0 * cpu_s / audio_s);
    printf("kwsd peak RSS    %ld KiB\n", sc->peak_kib);
}

int main(int argc, char **argv) {
    static struct clip clips[MAX_CLIPS], noise[512];
    static struct event ev[MAX_EVENTS];
    struct soak s = {.clips = clips, .noise = noise, .ev = ev};
    struct soak_opts o;
    struct score sc = {0};
    char dir[] = "/tmp/kwsd-soak-XXXXXX", path[1024];

    int rc = parse_opts(argc, argv, &o);
    if (rc >= 0)
        return rc;
    load_split(&s, &o);

    /* The long recording, written as a WAV in a scratch directory. */
    size_t total;
    float *x = make_recording(&s, &o, &total);
    if (!mkdtemp(dir))
        die("mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/soak.wav", dir);
    if (write_wav(path, x, total) < 0)
        die("%s: cannot write", path);
    free(x);

    run_kwsd(&s, &o, dir, &sc);
    score_events(&s, &sc);
    sc.audio_s = o.minutes * 60.0;
    if (o.json)
        print_json(&s, &sc);
    else
        print_text(&s, &sc);

    snprintf(path, sizeof path, "rm -rf %s", dir);
    if (system(path) != 0)
        fprintf(stderr, "kwsd-soak: cannot remove %s\n", dir);
    return 0;
}

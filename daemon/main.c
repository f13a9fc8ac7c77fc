/* main.c: kwsd, the keyword-spotting daemon.
 *
 * main() reads as the daemon's ordered start: configuration, model, front
 * end, PCM, sockets, then READY=1 to systemd. From then on one libuv loop
 * does everything: ALSA's descriptors wake it, each 10 ms frame steps the
 * spiking network, the detector decides, and events go out on ZeroMQ without
 * ever blocking. SIGINT/SIGTERM close every handle and end the loop; SIGHUP
 * re-reads the configuration and swaps it in only if it is valid.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sndfile.h>

#include "kws/err.h"
#include "kws/log.h"
#include "kwsd.h"

#ifndef KWSD_VERSION
#define KWSD_VERSION "0.0.0"
#endif

#define KWSD_DEFAULT_CONFIG "/etc/kwsd/kwsd.yaml"
#define FILE_BLOCK 4096 /* samples pushed per idle turn in --input mode */

static void kwsd_stop(struct kwsd *k, int code);
static void kwsd_notify_status(struct kwsd *k);

/* ==== Logging ==== */

/* Under systemd (JOURNAL_STREAM is set) lines carry journald's "<N>" prefix;
 * on a terminal they read "kwsd: level: message". */
static void log_setup(enum kws_log_level level) {
    static int terminal = 1;
    kws_log_set(kws_log_stderr, getenv("JOURNAL_STREAM") ? NULL : &terminal, level);
}

#define LOGE(...) KWS_LOG(KWS_LOG_ERR, __VA_ARGS__)
#define LOGW(...) KWS_LOG(KWS_LOG_WARNING, __VA_ARGS__)
#define LOGN(...) KWS_LOG(KWS_LOG_NOTICE, __VA_ARGS__)
#define LOGI(...) KWS_LOG(KWS_LOG_INFO, __VA_ARGS__)
#define LOGD(...) KWS_LOG(KWS_LOG_DEBUG, __VA_ARGS__)

/* ==== Model, detector and network state ==== */

static void net_free(struct kwsd_net *n) {
    if (!n)
        return;
    kws_listener_free(&n->lis);
    snn_model_free(&n->model);
    free(n);
}

/* Loads the model of cfg and builds a listener for it with cfg's detection
 * settings, into a new *out. Errors go to d as "path: message" lines. */
static int net_build(struct kwsd_net **out, const struct kws_config *cfg, struct config_diags *d) {
    const char *labels[SNN_MAX_CLASSES];
    struct kws_listener_settings ls;
    char msg[256];
    int rc;

    struct kwsd_net *n = *out = calloc(1, sizeof *n);
    if (!n) {
        config_diags_add(d, "%s: %s", cfg->model.path, kws_strerror(-ENOMEM));
        return -ENOMEM;
    }
    rc = snn_model_load(&n->model, cfg->model.path, msg, sizeof msg);
    if (rc < 0) {
        size_t pl = strlen(cfg->model.path); /* file system errors name the path already */
        if (strncmp(msg, cfg->model.path, pl) == 0 && msg[pl] == ':')
            config_diags_add(d, "%s", msg);
        else
            config_diags_add(d, "%s: %s", cfg->model.path, msg);
        goto fail;
    }
    for (int c = 0; c < n->model.cfg.n_classes; c++)
        labels[c] = n->model.cfg.labels[c];
    rc = config_check_labels(cfg, labels, n->model.cfg.n_classes, d);
    if (rc < 0)
        goto fail;
    config_listener_settings(cfg, &ls);
    if (cfg->detection.threshold == KWS_THRESHOLD_MODEL)
        LOGI("detection threshold %.2f (%s)",
             (double)kws_listener_threshold(&ls, NULL, n->model.cfg.threshold),
             n->model.cfg.threshold > 0.0f ? "calibrated into the model"
                                           : "the model has no calibrated threshold");
    rc = kws_listener_init(&n->lis, &n->model, &ls);
    if (rc < 0) {
        config_diags_add(d, "%s: listener: %s", cfg->model.path, kws_strerror(rc));
        goto fail;
    }
    return 0;
fail:
    net_free(n);
    *out = NULL;
    return rc < 0 ? rc : KWS_ECONFIG;
}

/* Whether two loaded models are the same network: the same header fields
 * and the same parameters, as two loads of one file are. */
static int net_same_model(const struct snn_model *a, const struct snn_model *b) {
    return memcmp(&a->cfg, &b->cfg, sizeof a->cfg) == 0 && a->n_params == b->n_params &&
           memcmp(a->mem, b->mem, a->n_params * sizeof *a->mem) == 0;
}

/* Swaps a reload's new set n in for the running one and frees what is not
 * kept. The event time base always continues, so end_ms never goes back:
 * - same model (net_same_model): the running network state is kept; so is
 *   the detector, with the new thresholds, when smoothing and refractory
 *   are unchanged;
 * - otherwise the new network starts from rest and the new detector's
 *   frame 0 is now on the stream clock (k->time_base_ms), with what was
 *   left of the refractory period carried over.
 * Returns what happened, for the log line. */
static const char *net_swap(struct kwsd *k, struct kwsd_net *n) {
    struct kwsd_net *o = k->net;
    struct kws_listener *ol = &o->lis, *nl = &n->lis;
    const char *what;

    if (net_same_model(&n->model, &o->model)) {
        if (nl->det.cfg.smoothing_frames == ol->det.cfg.smoothing_frames &&
            nl->det.cfg.refractory_frames == ol->det.cfg.refractory_frames) {
            memcpy(ol->det.cfg.threshold, nl->det.cfg.threshold, sizeof ol->det.cfg.threshold);
            ol->settings = nl->settings;
            net_free(n);
            return "same model: network state and detector kept";
        }
        /* the models are equal, so the running state fits the new one */
        struct snn_state st = nl->state;
        nl->state = ol->state;
        ol->state = st;
        what = "same model: network state kept, new smoothing or refractory period";
    } else {
        what = "new model: the network starts from rest";
    }
    nl->held = ol->held;
    int64_t old_ms = ol->det.cfg.frame_ms, new_ms = nl->det.cfg.frame_ms;
    int64_t quiet_ms = (ol->det.quiet_until - ol->det.frame) * old_ms;
    k->time_base_ms += ol->det.frame * old_ms;
    if (quiet_ms > 0)
        nl->det.quiet_until = (quiet_ms + new_ms - 1) / new_ms;
    k->net = n;
    net_free(o);
    return what;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ==== Audio path: samples -> frames -> network -> detector -> events ==== */

static void on_frame(void *ctx, const float *feat, const float *spikes) {
    struct kwsd *k = ctx;
    struct kws_hit hit;

    (void)feat;
    k->frames++;
    struct kws_listener *l = &k->net->lis;
    uint64_t was_held = l->held;
    int fired = kws_listener_frame(l, spikes, k->pipe.fe.zero_run, &hit);
    /* a muted input rests the network (KWS_HOLD_MS) */
    if (l->held && !was_held)
        LOGI("input is digital silence: the network rests until sound returns");
    else if (was_held && !l->held)
        LOGI("sound is back after %.1f s of digital silence",
             (double)(KWS_HOLD_MS + (double)was_held * l->frame_ms) / 1000.0);
    if (!fired)
        return;
    k->detections++;
    struct kws_detection ev = {
        .keyword = k->net->model.cfg.labels[hit.label],
        .score = hit.score,
        .threshold = hit.threshold,
        .start_ms = k->time_base_ms + hit.start_ms,
        .end_ms = k->time_base_ms + hit.end_ms,
        .seq = k->detections,
        .model = k->model_name,
    };
    LOGI("detected \"%s\" score %.3f at %.2f s", ev.keyword, (double)ev.score,
         (double)ev.end_ms / 1000.0);
    kwsd_publish(k, &ev);
}

/* Counts input samples the source replaced by 0 (audio_sanitize) and says
 * so once: the first time any arrive. */
static void count_bad_samples(struct kwsd *k, uint64_t total) {
    if (total > k->bad_samples && k->bad_samples == 0)
        LOGW("input has samples that are NaN, infinite or beyond +-%g (first at %.2f s of "
             "audio): each is replaced by 0 and counted; logged once",
             (double)AUDIO_SAMPLE_ABSURD, (double)k->audio_ns / 1e9);
    k->bad_samples = total;
}

/* Feeds one block of device-rate samples. The pipe is (re)built only when
 * the rate changes, i.e. at the first block and after a device reopen. */
static void on_audio(void *ctx, const float *mono, size_t n, int rate) {
    struct kwsd *k = ctx;
    uint64_t t0 = uv_hrtime();
    int rc;

    if (k->stopping)
        return;
    if (k->cap_open) {
        struct audio_capture_stats cs;
        audio_capture_get_stats(&k->cap, &cs);
        if (cs.bad != k->bad_samples)
            count_bad_samples(k, cs.bad);
        if (k->cap_waiting) {
            k->cap_waiting = 0;
            LOGN("capture %s appeared after %u failed attempt(s): listening", k->cfg.audio.device,
                 cs.errors);
            kwsd_notify_status(k);
        }
    }
    if (rate != k->pipe_rate) {
        rc = k->pipe_rate ? audio_pipe_set_in_rate(&k->pipe, rate)
                          : audio_pipe_init(&k->pipe, &k->net->model.cfg.fe, rate, FILE_BLOCK);
        if (rc < 0) {
            LOGE("cannot resample %d Hz to %d Hz: %s", rate, k->net->model.cfg.fe.sample_rate,
                 kws_strerror(rc));
            kwsd_stop(k, 1);
            return;
        }
        if (k->pipe_rate)
            LOGN("capture rate is now %d Hz", rate);
        k->pipe_rate = rate;
    }
    audio_pipe_push(&k->pipe, mono, n, on_frame, k);
    k->busy_ns += uv_hrtime() - t0;
    k->audio_ns += (uint64_t)n * 1000000000ull / (uint64_t)rate;
}

/* --input mode: one block per loop turn, so timers and signals still run.
 * The file is streamed, never held whole, so memory stays what it is on a
 * live device however long the file. */
static void on_file_feed(uv_idle_t *h) {
    struct kwsd *k = h->data;
    sf_count_t got = sf_readf_float(k->file, k->file_buf, FILE_BLOCK);

    if (got > 0) {
        k->file_read += got;
        for (sf_count_t i = 0; i < got; i++) /* first channel, as capture does */
            k->file_buf[i] = k->file_buf[i * k->file_channels];
        size_t bad = audio_sanitize(k->file_buf, (size_t)got);
        if (bad)
            count_bad_samples(k, k->bad_samples + bad);
        on_audio(k, k->file_buf, (size_t)got, k->file_rate);
    }
    if (got < FILE_BLOCK && !k->stopping) {
        double audio_s = (double)k->audio_ns / 1e9;
        /* A short read is the end only if libsndfile reports no error and the
         * file gave every frame its header announced (SF_COUNT_MAX: unknown). */
        if (sf_error(k->file) != SF_ERR_NO_ERROR) {
            LOGE("%s: decode error after %.1f s of audio: %s", k->input_file, audio_s,
                 sf_strerror(k->file));
            kwsd_stop(k, 1);
            return;
        }
        if (k->file_frames != SF_COUNT_MAX && k->file_read < k->file_frames) {
            LOGE("%s: ends after %lld of the %lld frames its header announces", k->input_file,
                 (long long)k->file_read, (long long)k->file_frames);
            kwsd_stop(k, 1);
            return;
        }
        LOGN("end of %s: %.1f s of audio, %llu detections, real-time factor %.4f", k->input_file,
             audio_s, (unsigned long long)k->detections,
             audio_s > 0 ? (double)k->busy_ns / (double)k->audio_ns : 0.0);
        kwsd_stop(k, 0);
    }
}

static void on_file_delay(uv_timer_t *h) {
    struct kwsd *k = h->data;
    if (!k->stopping)
        uv_idle_start(&k->file_feed, on_file_feed);
}

/* ==== Heartbeat, watchdog, signals ==== */

/* systemd's STATUS= line (systemctl status): what kwsd is listening to. */
static void kwsd_notify_status(struct kwsd *k) {
    char st[400];
    if (k->input_file)
        return;
    snprintf(st, sizeof st, "STATUS=%s %s",
             k->cap_waiting ? "waiting for capture device" : "listening on", k->cfg.audio.device);
    kwsd_notify(st);
}

static void on_heartbeat(uv_timer_t *h) {
    struct kwsd *k = h->data;
    struct audio_capture_stats cs = {0};

    if (k->cap_open)
        audio_capture_get_stats(&k->cap, &cs);
    struct kws_status st = {
        .uptime_s = (double)(uv_hrtime() - k->start_ns) / 1e9,
        .frames = k->frames,
        .xruns = cs.xruns,
        .rtf = k->audio_ns ? (double)k->busy_ns / (double)k->audio_ns : 0.0,
        .device = k->input_file ? k->input_file : k->cfg.audio.device,
        .rate = k->input_file ? k->file_rate : cs.rate,
        .model = k->model_name,
        .detections = k->detections,
    };
    kwsd_events_status(k, &st);
    transport_pub_status(&k->pub, &st);
}

/* WATCHDOG=1 while audio flows, or while the device is away and capture is
 * retrying it (missing at start or lost later): a restart cannot bring a
 * device back, and the retry timer proves the loop alive. An open device
 * that stalls lets systemd's watchdog restart the service. */
static void on_watchdog(uv_timer_t *h) {
    struct kwsd *k = h->data;
    struct audio_capture_stats cs = {0};

    if (k->cap_open)
        audio_capture_get_stats(&k->cap, &cs);
    if (k->frames > k->frames_at_watchdog || (k->cap_open && !cs.open))
        kwsd_notify("WATCHDOG=1");
    k->frames_at_watchdog = k->frames;
}

/* SIGHUP: builds everything the new configuration needs (model, state,
 * detector and, for a model with another front end, the audio pipe at the
 * running input rate) and swaps it in only once all of it is built; any
 * failure keeps the running set and logs why. */
static void reload(struct kwsd *k) {
    struct kws_config next;
    struct config_diags d = {0};
    struct kwsd_net *net = NULL;
    struct audio_pipe pipe = {0};
    int new_fe = 0, rc;

    if (!k->config_path[0]) {
        LOGN("reload: running on built-in defaults with no configuration file; nothing to reload");
        return;
    }
    kwsd_notify("RELOADING=1");
    rc = config_load(&next, k->config_path, &d);
    if (rc == 0) {
        if (k->device_override)
            snprintf(next.audio.device, sizeof next.audio.device, "%s", k->device_override);
        if (k->model_override)
            snprintf(next.model.path, sizeof next.model.path, "%s", k->model_override);
        rc = net_build(&net, &next, &d);
    }
    if (rc == 0) {
        new_fe = memcmp(&net->model.cfg.fe, &k->net->model.cfg.fe, sizeof net->model.cfg.fe) != 0;
        /* Before the first block there is no pipe yet: the first block builds it. */
        if (new_fe && k->pipe_rate &&
            (rc = audio_pipe_init(&pipe, &net->model.cfg.fe, k->pipe_rate, FILE_BLOCK)) < 0) {
            config_diags_add(&d, "%s: front end from %d Hz: %s", next.model.path, k->pipe_rate,
                             kws_strerror(rc));
            audio_pipe_free(&pipe);
            net_free(net);
        }
    }
    if (rc < 0) {
        LOGE("reload of %s failed; the running configuration stays:", k->config_path);
        for (int i = 0; i < d.n; i++)
            LOGE("%s", d.msg[i]);
        kwsd_notify("READY=1");
        return;
    }
    if (new_fe && k->pipe_rate) {
        audio_pipe_free(&k->pipe);
        k->pipe = pipe;
    }
    struct kwsd_net *was = k->net; /* alive until net_swap: a new net is elsewhere */
    struct kws_listener_settings was_ls = was->lis.settings;
    const char *kept = net_swap(k, net);
    if (strcmp(next.audio.device, k->cfg.audio.device) || next.audio.rate != k->cfg.audio.rate ||
        next.audio.period_ms != k->cfg.audio.period_ms)
        LOGW("audio settings changed in %s: they take effect at the next restart",
             k->config_path);
    if (memcmp(&next.transport, &k->cfg.transport, sizeof next.transport) ||
        memcmp(&next.mqtt, &k->cfg.mqtt, sizeof next.mqtt))
        LOGW("transport settings changed in %s: they take effect at the next restart",
             k->config_path);
    next.audio = k->cfg.audio;
    next.transport = k->cfg.transport;
    next.mqtt = k->cfg.mqtt;
    if (!k->log_override)
        log_setup(next.logging.level);
    k->cfg = next;
    k->model_name = base_name(k->cfg.model.path); /* points into k->cfg, not the local copy */
    if (k->wy.open &&
        (k->net != was || memcmp(&was_ls, &k->net->lis.settings, sizeof was_ls) != 0) &&
        wyoming_server_set_model(&k->wy, &k->net->model, &k->net->lis.settings, k->model_name) < 0)
        LOGW("reload: out of memory for some Wyoming clients: they were closed");
    LOGN("reloaded %s (model %s, %d classes; %s)", k->config_path, k->cfg.model.path,
         k->net->model.cfg.n_classes, kept);
    kwsd_notify("READY=1");
}

static void on_signal(uv_signal_t *h, int signum) {
    struct kwsd *k = h->data;
    if (signum == SIGHUP) {
        reload(k);
        return;
    }
    LOGN("signal %d: stopping", signum);
    kwsd_stop(k, 0);
}

/* ==== Shutdown ==== */

static void on_handle_closed(uv_handle_t *h) {
    (void)h;
}

static void on_capture_closed(struct audio_capture *c) {
    (void)c;
}

static void close_handle(struct kwsd *k, uv_handle_t *h) {
    if (h->loop && !uv_is_closing(h)) {
        h->data = k;
        uv_close(h, on_handle_closed);
    }
}

/* Closes every handle; uv_run returns once their close callbacks have run. */
static void kwsd_stop(struct kwsd *k, int code) {
    if (k->stopping)
        return;
    k->stopping = 1;
    k->exit_code = code;
    kwsd_notify("STOPPING=1");
    close_handle(k, (uv_handle_t *)&k->sig_int);
    close_handle(k, (uv_handle_t *)&k->sig_term);
    close_handle(k, (uv_handle_t *)&k->sig_hup);
    close_handle(k, (uv_handle_t *)&k->heartbeat);
    close_handle(k, (uv_handle_t *)&k->watchdog);
    close_handle(k, (uv_handle_t *)&k->file_feed);
    close_handle(k, (uv_handle_t *)&k->file_delay);
    kwsd_events_close(k);
    wyoming_server_close(&k->wy);
    if (k->cap_open) {
        audio_capture_close(&k->cap, on_capture_closed);
        k->cap_open = 0;
    }
}

/* Peak resident memory of this program: VmHWM, which exec resets, unlike
 * getrusage's ru_maxrss, which keeps the parent's size from before exec. */
static long peak_rss_kib(void) {
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");

    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    if (kib < 0) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            kib = ru.ru_maxrss;
    }
    return kib;
}

/* ==== Start ==== */

static void usage(FILE *f) {
    fprintf(f,
            "usage: kwsd [options]\n"
            "  -c, --config PATH     configuration file (default " KWSD_DEFAULT_CONFIG ")\n"
            "      --check-config    validate the configuration and the model, then exit\n"
            "  -d, --device NAME     ALSA capture device (overrides audio.device)\n"
            "  -m, --model PATH      model file (overrides model.path)\n"
            "  -i, --input FILE      process an audio file instead of a device, then exit\n"
            "      --input-delay MS  with --input: wait MS ms after start-up before reading\n"
            "                        (lets subscribers connect; the file runs faster than real time)\n"
            "  -l, --log-level L     error|warning|notice|info|debug\n"
            "  -V, --version         print the version\n"
            "  -h, --help            this text\n");
}

static int start_audio(struct kwsd *k) {
    char msg[512];
    int rc;

    if (k->input_file) {
        SF_INFO info = {0};
        k->file = sf_open(k->input_file, SFM_READ, &info);
        if (!k->file) {
            LOGE("%s: %s", k->input_file, sf_strerror(NULL));
            return -EIO;
        }
        if (info.channels < 1 || info.samplerate < 1000 || info.samplerate > 384000) {
            LOGE("%s: unusable stream (%d channels at %d Hz)", k->input_file, info.channels,
                 info.samplerate);
            return KWS_EFORMAT;
        }
        k->file_rate = info.samplerate;
        k->file_frames = info.frames;
        k->file_channels = info.channels;
        k->file_buf = malloc((size_t)FILE_BLOCK * (size_t)info.channels * sizeof(float));
        if (!k->file_buf)
            return -ENOMEM;
        uv_idle_init(&k->loop, &k->file_feed);
        k->file_feed.data = k;
        uv_timer_init(&k->loop, &k->file_delay);
        k->file_delay.data = k;
        uv_timer_start(&k->file_delay, on_file_delay, k->input_delay_ms, 0);
        LOGI("input %s: %lld frames at %d Hz, %d channel(s)", k->input_file,
             (long long)info.frames, k->file_rate, k->file_channels);
        return 0;
    }
    /* A device that is not there yet (a USB microphone that comes up after
     * kwsd) is waited for like one unplugged later: capture retries it with
     * backoff while everything else runs. Only invalid settings fail here. */
    struct audio_capture_cfg cc = {
        .device = k->cfg.audio.device,
        .rate = k->cfg.audio.rate,
        .period_ms = k->cfg.audio.period_ms,
        .wait = 1,
    };
    rc = audio_capture_open(&k->cap, &k->loop, &cc, on_audio, k, msg, sizeof msg);
    if (rc < 0) {
        LOGE("%s", msg);
        return rc;
    }
    k->cap_open = 1;
    struct audio_capture_stats cs;
    audio_capture_get_stats(&k->cap, &cs);
    if (!cs.open) {
        k->cap_waiting = 1;
        LOGN("capture %s is not there yet: kwsd runs without audio (heartbeats, reloads) and "
             "retries it every %d s at most until it appears",
             k->cfg.audio.device, AUDIO_CAPTURE_RETRY_MAX_MS / 1000);
        return 0;
    }
    LOGI("capture %s: %d Hz, %d channel(s), %s, period %d samples", k->cfg.audio.device, cs.rate,
         cs.channels, cs.format ? cs.format : "?", cs.period);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"check-config", no_argument, NULL, 'C'},
        {"device", required_argument, NULL, 'd'},  {"model", required_argument, NULL, 'm'},
        {"input", required_argument, NULL, 'i'},   {"log-level", required_argument, NULL, 'l'},
        {"input-delay", required_argument, NULL, 'D'},
        {"version", no_argument, NULL, 'V'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct kwsd kd; /* large: keep it off the stack */
    struct kwsd *k = &kd;
    struct config_diags diags = {0};
    struct kwsd_net *net = NULL;
    int check_only = 0, opt, rc;
    const char *config_path = KWSD_DEFAULT_CONFIG;
    int config_given = 0;
    sigset_t hup;

    /* 0. SIGHUP's default action ends a process, and a reload may be asked
     * for as soon as kwsd exists: keep it blocked until its uv_signal
     * handler is installed (step 5). One that comes meanwhile waits and is
     * then a reload. Threads started in between (libzmq's) inherit the
     * mask, so it reaches this thread. SIGINT and SIGTERM keep their default
     * action until step 5: a stop asked for during start-up stops. */
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigaddset(&hup, SIGUSR1); /* pause and resume (events.c): their default ends a process */
    sigaddset(&hup, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);

    k->log_level = KWS_LOG_INFO;
    while ((opt = getopt_long(argc, argv, "c:d:m:i:l:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            config_given = 1;
            break;
        case 'C':
            check_only = 1;
            break;
        case 'd':
            k->device_override = optarg;
            break;
        case 'm':
            k->model_override = optarg;
            break;
        case 'D': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 0 || v > 600000) {
                fprintf(stderr, "kwsd: --input-delay: \"%s\" is not a number of ms in [0, 600000]\n",
                        optarg);
                return 2;
            }
            k->input_delay_ms = (uint64_t)v;
            break;
        }
        case 'i':
            k->input_file = optarg;
            break;
        case 'l':
            if (kws_log_level_parse(optarg, &k->log_level) < 0) {
                fprintf(stderr, "kwsd: --log-level: unknown level \"%s\"\n", optarg);
                return 2;
            }
            k->log_override = 1;
            break;
        case 'V':
            printf("kwsd %s\n", KWSD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kwsd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* 1. Configuration. A missing default file means built-in defaults; a
     * file named on the command line must exist. */
    log_setup(k->log_level);
    snprintf(k->config_path, sizeof k->config_path, "%s", config_path);
    if (!config_given && access(config_path, F_OK) != 0) {
        config_defaults(&k->cfg);
        k->config_path[0] = '\0';
    } else if ((rc = config_load(&k->cfg, config_path, &diags)) < 0) {
        config_diags_print(&diags, stderr);
        if (diags.n == 0)
            fprintf(stderr, "kwsd: %s: %s\n", config_path, kws_strerror(rc));
        return 1;
    }
    if (k->device_override)
        snprintf(k->cfg.audio.device, sizeof k->cfg.audio.device, "%s", k->device_override);
    if (k->model_override)
        snprintf(k->cfg.model.path, sizeof k->cfg.model.path, "%s", k->model_override);
    if (!k->log_override)
        k->log_level = k->cfg.logging.level;
    log_setup(k->log_level);

    /* 2. Model, detector and network state. */
    if (net_build(&net, &k->cfg, &diags) < 0) {
        config_diags_print(&diags, stderr);
        return 1;
    }
    k->net = net;
    k->model_name = base_name(k->cfg.model.path);
    if (check_only) {
        printf("%s: ok (model %s: %d classes, %d inputs, %d hidden layers)\n",
               k->config_path[0] ? k->config_path : "built-in defaults", k->cfg.model.path,
               k->net->model.cfg.n_classes, k->net->model.cfg.n_in, k->net->model.cfg.n_layers);
        net_free(k->net);
        return 0;
    }
    LOGN("kwsd %s starting (config %s)", KWSD_VERSION,
         k->config_path[0] ? k->config_path : "built-in defaults");
    LOGI("model %s: %d inputs, %d hidden layers, %d classes, front end %d Hz / %d mels",
         k->cfg.model.path, k->net->model.cfg.n_in, k->net->model.cfg.n_layers, k->net->model.cfg.n_classes,
         k->net->model.cfg.fe.sample_rate, k->net->model.cfg.fe.n_mels);

    rc = uv_loop_init(&k->loop);
    if (rc < 0) {
        LOGE("event loop: %s", uv_strerror(rc));
        return 1;
    }
    k->start_ns = uv_hrtime();

    /* 3. PCM (or file) and the front end built from the model. */
    if (start_audio(k) < 0) {
        k->exit_code = 1;
        goto out;
    }

    /* 4. Sockets. */
    {
        const char *eps[KWS_CONFIG_MAX_ENDPOINTS];
        char msg[512];
        for (int i = 0; i < k->cfg.transport.n_endpoints; i++)
            eps[i] = k->cfg.transport.endpoints[i];
        rc = transport_pub_open(&k->pub, eps, k->cfg.transport.n_endpoints,
                                k->cfg.transport.queue, msg, sizeof msg);
        if (rc < 0) {
            LOGE("%s", msg);
            kwsd_stop(k, 1);
            goto out;
        }
        for (int i = 0; i < k->pub.n_bound; i++)
            LOGI("publishing on %s", k->pub.bound[i]);
        if (k->cfg.transport.wyoming[0]) {
            struct wyoming_cfg wc = {.endpoint = k->cfg.transport.wyoming,
                                     .model = &k->net->model,
                                     .settings = &k->net->lis.settings,
                                     .model_name = k->model_name,
                                     .version = KWSD_VERSION};
            if (wyoming_server_open(&k->wy, &k->loop, &wc, msg, sizeof msg) < 0) {
                LOGE("%s", msg);
                kwsd_stop(k, 1);
                goto out;
            }
            LOGI("Wyoming wake-word server on %s", k->wy.bound);
        }
        if (kwsd_events_open(k) < 0) {
            kwsd_stop(k, 1);
            goto out;
        }
    }

    /* 5. Signals and timers, then tell systemd we are ready. */
    uv_signal_init(&k->loop, &k->sig_int);
    uv_signal_init(&k->loop, &k->sig_term);
    uv_signal_init(&k->loop, &k->sig_hup);
    k->sig_int.data = k->sig_term.data = k->sig_hup.data = k;
    uv_signal_start(&k->sig_int, on_signal, SIGINT);
    uv_signal_start(&k->sig_term, on_signal, SIGTERM);
    uv_signal_start(&k->sig_hup, on_signal, SIGHUP);
    pthread_sigmask(SIG_UNBLOCK, &hup, NULL);
    uv_timer_init(&k->loop, &k->heartbeat);
    k->heartbeat.data = k;
    uint64_t hb_ms = (uint64_t)(k->cfg.transport.heartbeat_s * 1000.0);
    uv_timer_start(&k->heartbeat, on_heartbeat, hb_ms, hb_ms);
    uv_timer_init(&k->loop, &k->watchdog);
    k->watchdog.data = k;
    uint64_t wd_ms = kwsd_watchdog_ms();
    if (wd_ms)
        uv_timer_start(&k->watchdog, on_watchdog, wd_ms / 2, wd_ms / 2);
    kwsd_notify("READY=1");
    kwsd_notify_status(k);
    LOGN("ready%s", k->cap_waiting ? " (waiting for the capture device)" : "");

out:
    uv_run(&k->loop, UV_RUN_DEFAULT);
    transport_pub_close(&k->pub);
    rc = uv_loop_close(&k->loop);
    if (rc < 0)
        LOGE("event loop did not close cleanly: %s", uv_strerror(rc));
    audio_pipe_free(&k->pipe);
    if (k->file)
        sf_close(k->file);
    free(k->file_buf);
    net_free(k->net);
    LOGI("stopped: %llu frames, %llu detections, %llu input samples replaced by 0, peak RSS %ld "
         "KiB",
         (unsigned long long)k->frames, (unsigned long long)k->detections,
         (unsigned long long)k->bad_samples, peak_rss_kib());
    return k->exit_code;
}

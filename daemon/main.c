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
#include <malloc.h>
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

/* ==== Models, detectors and network states ==== */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void set_free(struct kwsd_set *set) {
    if (!set)
        return;
    for (int i = 0; i < set->n; i++) {
        kws_listener_free(&set->m[i].lis);
        snn_model_free(&set->m[i].model);
    }
    for (int f = 0; f < set->n_fronts; f++)
        audio_pipe_free(&set->fronts[f].pipe);
    free(set);
}

/* Loads one model file into m, errors to d as "path: message". */
static int model_load(struct kwsd_model *m, const char *path, struct config_diags *d) {
    char msg[256];

    size_t len = strnlen(path, sizeof m->path);
    if (len == sizeof m->path) {
        config_diags_add(d, "%.64s...: path too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(m->path, path, len + 1);
    m->name = base_name(m->path);
    int rc = snn_model_load(&m->model, path, msg, sizeof msg);
    if (rc < 0) {
        size_t pl = strlen(path); /* file system errors name the path already */
        if (strncmp(msg, path, pl) == 0 && msg[pl] == ':')
            config_diags_add(d, "%s", msg);
        else
            config_diags_add(d, "%s: %s", path, msg);
    }
    return rc;
}

/* The label rule of a set: a keyword label (one that fires: not "_...")
 * comes from one model only, so detection.keywords.<label> and the topic
 * kws.detection.<label> each name one keyword of one model. */
static int set_check_labels(const struct kwsd_set *set, struct config_diags *d) {
    int bad = 0;

    for (int i = 1; i < set->n; i++) {
        const struct snn_cfg *ci = &set->m[i].model.cfg;
        for (int c = 0; c < ci->n_classes; c++) {
            if (ci->labels[c][0] == '_')
                continue;
            for (int j = 0; j < i; j++) {
                const struct snn_cfg *cj = &set->m[j].model.cfg;
                for (int e = 0; e < cj->n_classes; e++)
                    if (strcmp(cj->labels[e], ci->labels[c]) == 0) {
                        config_diags_add(d,
                                         "%s: keyword \"%s\" is also in %s: a keyword may come "
                                         "from one loaded model only",
                                         set->m[i].path, ci->labels[c], set->m[j].path);
                        bad++;
                    }
            }
        }
    }
    return bad ? KWS_ECONFIG : 0;
}

/* Loads every model file of cfg (config_model_files) and builds a listener
 * for each with cfg's detection settings, and the list of front ends they
 * need (pipes not built yet), into a new *out. Any failure fails the whole
 * set; errors go to d. */
static int set_build(struct kwsd_set **out, const struct kws_config *cfg, struct config_diags *d) {
    char files[KWS_CONFIG_MAX_MODELS][KWS_CONFIG_PATH_LEN];
    const char *labels[KWS_CONFIG_MAX_MODELS * SNN_MAX_CLASSES];
    struct kws_listener_settings ls;
    int n_labels = 0, rc;

    struct kwsd_set *set = *out = calloc(1, sizeof *set);
    if (!set) {
        config_diags_add(d, "models: %s", kws_strerror(-ENOMEM));
        return -ENOMEM;
    }
    int n = rc = config_model_files(cfg, files, d); /* >= 1: model.path or model.paths */
    if (rc < 0)
        goto fail;
    for (int i = 0; i < n; i++, set->n++) /* set->n counts what set_free must free */
        if ((rc = model_load(&set->m[i], files[i], d)) < 0)
            goto fail;
    if ((rc = set_check_labels(set, d)) < 0)
        goto fail;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < set->m[i].model.cfg.n_classes; c++)
            labels[n_labels++] = set->m[i].model.cfg.labels[c];
    if ((rc = config_check_labels(cfg, labels, n_labels, d)) < 0)
        goto fail;
    config_listener_settings(cfg, &ls);
    for (int i = 0; i < n; i++) {
        struct kwsd_model *m = &set->m[i];
        if (cfg->detection.threshold == KWS_THRESHOLD_MODEL)
            LOGI("%s: detection threshold %.2f (%s)", m->name,
                 (double)kws_listener_threshold(&ls, NULL, m->model.cfg.threshold),
                 m->model.cfg.threshold > 0.0f ? "calibrated into the model"
                                               : "the model has no calibrated threshold");
        const struct kws_verifier *vf = &m->model.verify;
        if (vf->n_takes > 0)
            LOGI("%s: \"%s\" is checked against %d takes before it is published (%d ms later)",
                 m->name, m->model.cfg.labels[vf->label], (int)vf->n_takes,
                 (int)(vf->ahead * kws_frame_ms(&m->model.cfg.fe)));
        rc = kws_listener_init(&m->lis, &m->model, &ls);
        if (rc < 0) {
            config_diags_add(d, "%s: listener: %s", m->path, kws_strerror(rc));
            goto fail;
        }
        int f = 0;
        while (f < set->n_fronts &&
               memcmp(&set->fronts[f].fe, &m->model.cfg.fe, sizeof m->model.cfg.fe) != 0)
            f++;
        if (f == set->n_fronts) {
            set->fronts[f].fe = m->model.cfg.fe;
            set->fronts[f].set = set;
            set->fronts[f].index = f;
            set->n_fronts++;
        }
        m->front = f;
        size_t used = strlen(set->names);
        snprintf(set->names + used, sizeof set->names - used, "%s%s", i ? "," : "", m->name);
    }
    return 0;
fail:
    set_free(set);
    *out = NULL;
    return rc < 0 ? rc : KWS_ECONFIG;
}

/* The front end of set equal to fe, or NULL. */
static struct kwsd_front *front_find(struct kwsd_set *set, const struct kws_frontend_cfg *fe) {
    for (int f = 0; set && f < set->n_fronts; f++)
        if (memcmp(&set->fronts[f].fe, fe, sizeof *fe) == 0)
            return &set->fronts[f];
    return NULL;
}

/* Builds the pipes of set's front ends for input at rate Hz, except those
 * the running set has already (set_swap moves them over). rate 0: none
 * yet, the first block builds them. Errors go to d. */
static int set_build_pipes(struct kwsd_set *set, struct kwsd *k, int rate, struct config_diags *d) {
    for (int f = 0; f < set->n_fronts; f++) {
        struct kwsd_front *fr = &set->fronts[f];
        fr->k = k;
        if (!rate || fr->built || front_find(k->set, &fr->fe))
            continue;
        int rc = audio_pipe_init(&fr->pipe, &fr->fe, rate, FILE_BLOCK);
        if (rc < 0) {
            audio_pipe_free(&fr->pipe);
            config_diags_add(d, "front end of %d Hz from %d Hz: %s", fr->fe.sample_rate, rate,
                             kws_strerror(rc));
            return rc;
        }
        fr->built = 1;
    }
    return 0;
}

/* Carries what a reload keeps from the running model o into its successor
 * n (the new set's model of the same file or the same network). The event
 * time base always continues, so end_ms never goes back:
 * - same model (snn_model_same): the running network state is kept; so is
 *   the detector, with the new thresholds, when smoothing and refractory
 *   are unchanged;
 * - otherwise the new network starts from rest and the new detector's
 *   frame 0 is now on the stream clock, with what was left of the
 *   refractory period carried over.
 * Returns what happened, for the log line. */
static const char *model_carry(struct kwsd_model *n, struct kwsd_model *o) {
    struct kws_listener *ol = &o->lis, *nl = &n->lis;
    const char *what;

    if (snn_model_same(&n->model, &o->model)) {
        if (nl->det.cfg.smoothing_frames == ol->det.cfg.smoothing_frames &&
            nl->det.cfg.refractory_frames == ol->det.cfg.refractory_frames) {
            struct kws_listener built = *nl; /* the running listener moves over */
            *nl = *ol;
            *ol = built;
            memcpy(nl->det.cfg.threshold, ol->det.cfg.threshold, sizeof nl->det.cfg.threshold);
            nl->settings = ol->settings;
            nl->model = &n->model; /* equal models: the state fits either */
            ol->model = &o->model;
            n->time_base_ms = o->time_base_ms;
            return "same model: network state and detector kept";
        }
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
    n->time_base_ms = o->time_base_ms + ol->det.frame * old_ms;
    if (quiet_ms > 0)
        nl->det.quiet_until = (quiet_ms + new_ms - 1) / new_ms;
    return what;
}

/* Stream time now, ms: where the running set's first model is. */
static int64_t set_clock_ms(const struct kwsd_set *set) {
    const struct kwsd_model *m = &set->m[0];
    return m->time_base_ms + m->lis.det.frame * m->lis.det.cfg.frame_ms;
}

/* Swaps a reload's new set n in for the running one and returns the old
 * one, for the caller to free once nothing points into it.
 * Each new model takes over from a running one through model_carry: the
 * one of the same path, else of the same network, else any left over (a
 * file replaced by another); one with none left starts from rest on the
 * stream clock. Front ends equal to a running one keep running (their
 * pipe moves over); set_build_pipes has built the others. */
static struct kwsd_set *set_swap(struct kwsd *k, struct kwsd_set *n) {
    struct kwsd_set *o = k->set;
    int used[KWS_CONFIG_MAX_MODELS] = {0}, pred[KWS_CONFIG_MAX_MODELS];
    int64_t now_ms = set_clock_ms(o);

    for (int i = 0; i < n->n; i++)
        pred[i] = -1;

    for (int f = 0; f < n->n_fronts; f++) {
        struct kwsd_front *of = front_find(o, &n->fronts[f].fe);
        if (!of)
            continue;
        audio_pipe_free(&n->fronts[f].pipe);
        n->fronts[f].pipe = of->pipe;
        n->fronts[f].built = of->built;
        memset(&of->pipe, 0, sizeof of->pipe);
        of->built = 0;
    }
    /* successors: the same path first, then the same network, then any
     * model left (a file replaced by another: new network, same clock) */
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < n->n; i++) {
            if (pred[i] >= 0)
                continue;
            for (int j = 0; j < o->n && pred[i] < 0; j++)
                if (!used[j] &&
                    (pass == 2 || (pass == 0 ? strcmp(o->m[j].path, n->m[i].path) == 0
                                             : snn_model_same(&o->m[j].model, &n->m[i].model)))) {
                    pred[i] = j;
                    used[j] = 1;
                }
        }
    for (int i = 0; i < n->n; i++) {
        struct kwsd_model *nm = &n->m[i];
        if (pred[i] >= 0) {
            LOGN("reload: model %s, %d classes; %s", nm->path, nm->model.cfg.n_classes,
                 model_carry(nm, &o->m[pred[i]]));
        } else {
            nm->time_base_ms = now_ms;
            LOGN("reload: model %s, %d classes; added: the network starts from rest", nm->path,
                 nm->model.cfg.n_classes);
        }
    }
    for (int j = 0; j < o->n; j++)
        if (!used[j])
            LOGN("reload: model %s no longer loaded", o->m[j].path);
    k->set = n;
    return o;
}

/* ==== Audio path: samples -> frames -> network -> detector -> events ==== */

static void on_frame(void *ctx, const float *feat, const float *spikes) {
    struct kwsd_front *fr = ctx;
    struct kwsd *k = fr->k;
    struct kwsd_set *set = fr->set;
    struct kws_hit hit;

    if (fr->index == 0)
        k->frames++;
    for (int i = 0; i < set->n; i++) {
        struct kwsd_model *m = &set->m[i];
        if (m->front != fr->index)
            continue;
        struct kws_listener *l = &m->lis;
        uint64_t was_held = l->held, was_rejected = l->n_rejected;
        int fired = kws_listener_frame(l, feat, spikes, fr->pipe.fe.zero_run, &hit);
        if (l->n_rejected > was_rejected)
            LOGD("\"%s\" dropped: its takes cost %.3f, over the model's %.3f (%s)",
                 m->model.cfg.labels[m->model.verify.label], (double)l->last_cost,
                 (double)m->model.verify.cut, m->name);
        /* a muted input rests the networks (KWS_HOLD_MS): said once, for the first */
        if (i == 0 && l->held && !was_held)
            LOGI("input is digital silence: the network rests until sound returns");
        else if (i == 0 && was_held && !l->held)
            LOGI("sound is back after %.1f s of digital silence",
                 (double)(KWS_HOLD_MS + (double)was_held * l->frame_ms) / 1000.0);
        if (!fired)
            continue;
        k->detections++;
        struct kws_detection ev = {
            .keyword = m->model.cfg.labels[hit.label],
            .score = hit.score,
            .threshold = hit.threshold,
            .start_ms = m->time_base_ms + hit.start_ms,
            .end_ms = m->time_base_ms + hit.end_ms,
            .seq = k->detections,
            .model = m->name,
        };
        LOGI("detected \"%s\" score %.3f at %.2f s (%s)", ev.keyword, (double)ev.score,
             (double)ev.end_ms / 1000.0, m->name);
        kwsd_publish(k, &ev);
    }
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
        for (int f = 0; f < k->set->n_fronts; f++) {
            struct kwsd_front *fr = &k->set->fronts[f];
            rc = fr->built ? audio_pipe_set_in_rate(&fr->pipe, rate)
                           : audio_pipe_init(&fr->pipe, &fr->fe, rate, FILE_BLOCK);
            if (rc < 0) {
                LOGE("cannot resample %d Hz to %d Hz: %s", rate, fr->fe.sample_rate,
                     kws_strerror(rc));
                kwsd_stop(k, 1);
                return;
            }
            fr->built = 1;
        }
        if (k->pipe_rate)
            LOGN("capture rate is now %d Hz", rate);
        k->pipe_rate = rate;
    }
    for (int f = 0; f < k->set->n_fronts; f++)
        audio_pipe_push(&k->set->fronts[f].pipe, mono, n, on_frame, &k->set->fronts[f]);
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
        .open_errors = cs.errors,
        .rtf = k->audio_ns ? (double)k->busy_ns / (double)k->audio_ns : 0.0,
        .device = k->input_file ? k->input_file : k->cfg.audio.device,
        .rate = k->input_file ? k->file_rate : cs.rate,
        .model = k->set->names,
        .detections = k->detections,
    };
    kwsd_events_status(k, &st);
    transport_pub_status(&k->pub, &st);
    /* What peers of the endpoint made libzmq allocate (connections,
     * subscriptions) is freed when they leave, but glibc keeps the pages;
     * give them back (2,000 peers gone: 58.5 MiB RSS -> 13.4 MiB). */
    malloc_trim(0);
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

/* Points the Wyoming server at the running set. */
static int wyoming_set(struct kwsd *k) {
    const struct snn_model *models[KWS_CONFIG_MAX_MODELS];
    const char *names[KWS_CONFIG_MAX_MODELS];

    for (int i = 0; i < k->set->n; i++) {
        models[i] = &k->set->m[i].model;
        names[i] = k->set->m[i].name;
    }
    return wyoming_server_set_models(&k->wy, models, names, k->set->n, &k->set->m[0].lis.settings);
}

/* The configuration after the command line's --device and --model. */
static void apply_overrides(const struct kwsd *k, struct kws_config *cfg) {
    if (k->device_override)
        snprintf(cfg->audio.device, sizeof cfg->audio.device, "%s", k->device_override);
    if (k->model_override) {
        snprintf(cfg->model.path, sizeof cfg->model.path, "%s", k->model_override);
        cfg->model.n_paths = 0;
    }
}

/* What a reload builds before it swaps anything: the new configuration and
 * model set (with the audio pipes of its new front ends), or the reasons
 * not. */
struct reload_job {
    struct kwsd *k;
    struct kws_config next;
    struct config_diags d;
    struct kwsd_set *set;
    int rc;
};

/* Reads the configuration and every model file and builds the new set from
 * them; touches nothing that runs (set_build_pipes only reads the running
 * set, to leave out the front ends it has already). */
static void reload_build(struct reload_job *j) {
    struct kwsd *k = j->k;
    int rc = config_load(&j->next, k->config_path, &j->d);

    if (rc == 0) {
        apply_overrides(k, &j->next);
        rc = set_build(&j->set, &j->next, &j->d);
    }
    if (rc == 0 && (rc = set_build_pipes(j->set, k, k->pipe_rate, &j->d)) < 0) {
        set_free(j->set);
        j->set = NULL;
    }
    j->rc = rc;
}

/* reload_build on a thread of its own with a private, emptied copy of the
 * descriptor table (close_range CLOSE_RANGE_UNSHARE; stdin, stdout and
 * stderr stay). Peers of the event endpoint can hold every descriptor the
 * process may have (LimitNOFILE=): libzmq accepts connections until
 * EMFILE, and then a reload could not open its files ("Too many open
 * files"). The copy always has room; closing it closes nothing of the
 * daemon's. Signals are blocked on the thread, so libuv's handler never
 * runs where its pipe is closed. */
static void *reload_thread(void *arg) {
    struct reload_job *j = arg;
    if (close_range(3, ~0u, CLOSE_RANGE_UNSHARE) < 0)
        LOGD("reload: close_range: %s; building with the shared descriptor table", strerror(errno));
    reload_build(j);
    return NULL;
}

/* SIGHUP: builds everything the new configuration needs (every model, its
 * state and detector, and, for a front end the running set has not, its
 * audio pipe at the running input rate) and swaps it in only once all of
 * it is built; any failure (one bad model file is enough) keeps the
 * running set and logs why. The building runs on reload_thread, which the
 * loop waits for, as it waited for the files before. */
static void reload(struct kwsd *k) {
    static struct reload_job job; /* one reload at a time; several kB, kept off the stack */
    struct reload_job *j = &job;
    sigset_t all, old;
    pthread_t t;
    int rc;

    if (!k->config_path[0]) {
        LOGN("reload: running on built-in defaults with no configuration file; nothing to reload");
        return;
    }
    kwsd_notify("RELOADING=1");
    memset(j, 0, sizeof *j);
    j->k = k;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&t, NULL, reload_thread, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        pthread_join(t, NULL);
    else
        reload_build(j); /* no thread: as before, on the loop */
    rc = j->rc;
    struct kws_config next = j->next;
    const struct config_diags *d = &j->d;
    struct kwsd_set *set = j->set;
    if (rc < 0) {
        LOGE("reload of %s failed; the running configuration and models stay:", k->config_path);
        for (int i = 0; i < d->n; i++)
            LOGE("%s", d->msg[i]);
        kwsd_notify("READY=1");
        return;
    }
    struct kwsd_set *was = set_swap(k, set);
    if (strcmp(next.audio.device, k->cfg.audio.device) || next.audio.rate != k->cfg.audio.rate ||
        next.audio.period_ms != k->cfg.audio.period_ms)
        LOGW("audio settings changed in %s: they take effect at the next restart", k->config_path);
    /* transport.curve holds the keys read from its files too, so a changed
     * key file counts as a change, like an edited key. */
    if (memcmp(&next.transport.curve, &k->cfg.transport.curve, sizeof next.transport.curve))
        LOGW("transport.curve or its key files changed since %s was loaded: the running CURVE "
             "keys stay until the next restart",
             k->config_path);
    else if (memcmp(&next.transport, &k->cfg.transport, sizeof next.transport) ||
             memcmp(&next.mqtt, &k->cfg.mqtt, sizeof next.mqtt))
        LOGW("transport settings changed in %s: they take effect at the next restart",
             k->config_path);
    next.audio = k->cfg.audio;
    next.transport = k->cfg.transport;
    next.mqtt = k->cfg.mqtt;
    if (!k->log_override)
        log_setup(next.logging.level);
    k->cfg = next;
    if (k->wy.open && wyoming_set(k) < 0) /* before was is freed: it compares with it */
        LOGW("reload: out of memory for some Wyoming clients: they were closed");
    set_free(was);
    LOGN("reloaded %s (%d model(s): %s)", k->config_path, k->set->n, k->set->names);
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
    close_handle(k, (uv_handle_t *)&k->zap_poll); /* before pub closes its descriptor */
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
    fprintf(
        f,
        "usage: kwsd [options]\n"
        "  -c, --config PATH     configuration file (default " KWSD_DEFAULT_CONFIG ")\n"
        "      --check-config    validate the configuration and every model, then exit\n"
        "  -d, --device NAME     ALSA capture device (overrides audio.device)\n"
        "  -m, --model PATH      model file (overrides model.path and model.paths)\n"
        "  -i, --input FILE      process an audio file instead of a device, then exit\n"
        "      --input-delay MS  with --input: wait MS ms after start-up before reading\n"
        "                        (lets subscribers connect; the file runs faster than real time)\n"
        "  -l, --log-level L     error|warning|notice|info|debug\n"
        "      --curve-keygen DIR  write a CURVE key pair for transport.curve into DIR\n"
        "                        (server.key_secret, server.key), print the kwsd.yaml lines\n"
        "                        and exit; never overwrites a file\n"
        "      --client NAME     with --curve-keygen: a client's pair instead\n"
        "                        (DIR/clients/NAME.key, DIR/NAME.key_secret)\n"
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
        LOGI("input %s: %lld frames at %d Hz, %d channel(s)", k->input_file, (long long)info.frames,
             k->file_rate, k->file_channels);
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

/* "PATH: C classes, ... (front end F of N)": one model of the set, for
 * --check-config and the start-up log. */
static const char *describe_model(const struct kwsd_set *set, int i, char *buf, size_t len) {
    const struct snn_cfg *mc = &set->m[i].model.cfg;
    snprintf(buf, len,
             "%s: %d classes, %d inputs, %d hidden layers, front end %d Hz / %d mels to %.0f Hz "
             "(front end %d of %d)",
             set->m[i].path, mc->n_classes, mc->n_in, mc->n_layers, mc->fe.sample_rate,
             mc->fe.n_mels, (double)mc->fe.fmax, set->m[i].front + 1, set->n_fronts);
    return buf;
}

/* --curve-keygen DIR [--client NAME]: writes a key pair (never over a file)
 * and says what to do with it. Returns the exit code. */
static int curve_keygen(const char *dir, const char *client) {
    char pub[TRANSPORT_Z85_KEY_LEN], msg[700];

    if (transport_curve_keygen(dir, client, pub, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd: --curve-keygen: %s\n", msg);
        return 1;
    }
    if (client) {
        printf("wrote %s/clients/%s.key (public: kwsd lets this client in) and\n"
               "      %s/%s.key_secret (secret, mode 0600: give it to the client only)\n"
               "client public key: %s\n"
               "the client also needs the server's public key (%s/server.key);\n"
               "restart kwsd to let it in (systemctl restart kwsd)\n",
               dir, client, dir, client, pub, dir);
        return 0;
    }
    printf("wrote %s/server.key_secret (secret, mode 0600: readable by the kwsd user only) and\n"
           "      %s/server.key (public: give it to every client)\n"
           "server public key: %s\n"
           "in kwsd.yaml:\n"
           "transport:\n"
           "  curve:\n"
           "    secret_key_file: %s/server.key_secret\n"
           "    clients_dir: %s/clients\n"
           "then a key pair for each client: kwsd --curve-keygen %s --client NAME\n",
           dir, dir, pub, dir, dir, dir);
    return 0;
}

/* The command line into k and the three locals of main. Returns -1 to go
 * on, else the exit code (0 after --version or --help, 2 on a bad line). */
static int parse_args(struct kwsd *k, int argc, char **argv, const char **config_path,
                      int *config_given, int *check_only) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"device", required_argument, NULL, 'd'},
        {"model", required_argument, NULL, 'm'},
        {"input", required_argument, NULL, 'i'},
        {"log-level", required_argument, NULL, 'l'},
        {"input-delay", required_argument, NULL, 'D'},
        {"curve-keygen", required_argument, NULL, 'K'},
        {"client", required_argument, NULL, 'N'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *keygen_dir = NULL, *client = NULL;
    k->log_level = KWS_LOG_INFO;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:d:m:i:l:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            *config_path = optarg;
            *config_given = 1;
            break;
        case 'C':
            *check_only = 1;
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
                fprintf(stderr,
                        "kwsd: --input-delay: \"%s\" is not a number of ms in [0, 600000]\n",
                        optarg);
                return 2;
            }
            k->input_delay_ms = (uint64_t)v;
            break;
        }
        case 'i':
            k->input_file = optarg;
            break;
        case 'K':
            keygen_dir = optarg;
            break;
        case 'N':
            client = optarg;
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
    if (client && !keygen_dir) {
        fprintf(stderr, "kwsd: --client goes with --curve-keygen DIR\n");
        return 2;
    }
    return keygen_dir ? curve_keygen(keygen_dir, client) : -1;
}

/* transport.curve: the ZAP handler's descriptor became readable (ZMQ_FD,
 * edge-triggered): answer every client waiting. */
static void on_zap(uv_poll_t *h, int status, int events) {
    struct kwsd *k = h->data;
    (void)status;
    (void)events;
    int rc = transport_pub_zap_process(&k->pub);
    if (rc < 0)
        LOGE("curve: ZAP handler: %s", kws_strerror(rc));
}

/* Opens the publisher, with CURVE when transport.curve is set, and serves
 * its ZAP handler from the loop. Logs what failed; -1 then. */
static int open_pub(struct kwsd *k) {
    const struct kws_config *c = &k->cfg;
    const char *eps[KWS_CONFIG_MAX_ENDPOINTS], *keys[KWS_CONFIG_MAX_CLIENTS],
        *names[KWS_CONFIG_MAX_CLIENTS];
    struct transport_curve cv = {.secret_key = c->transport.curve.secret_key,
                                 .n_clients = c->transport.curve.n_clients,
                                 .client_keys = keys,
                                 .client_names = names};
    char msg[512];

    for (int i = 0; i < c->transport.n_endpoints; i++)
        eps[i] = c->transport.endpoints[i];
    for (int i = 0; i < cv.n_clients; i++) {
        keys[i] = c->transport.curve.clients[i].key;
        names[i] = c->transport.curve.clients[i].name;
    }
    if (transport_pub_open_curve(&k->pub, eps, c->transport.n_endpoints, c->transport.queue,
                                 c->transport.curve.secret_key[0] ? &cv : NULL, msg,
                                 sizeof msg) < 0) {
        LOGE("%s", msg);
        return -1;
    }
    for (int i = 0; i < k->pub.n_bound; i++)
        LOGI("publishing on %s", k->pub.bound[i]);
    if (!k->pub.zap)
        return 0;
    int fd = transport_pub_zap_fd(&k->pub), rc = fd < 0 ? -EIO : 0;
    if (rc == 0 && (rc = uv_poll_init(&k->loop, &k->zap_poll, fd)) == 0) {
        k->zap_poll.data = k;
        rc = uv_poll_start(&k->zap_poll, UV_READABLE, on_zap);
    }
    if (rc < 0) {
        LOGE("curve: cannot watch the ZAP handler: %s", fd < 0 ? "no descriptor" : uv_strerror(rc));
        return -1;
    }
    on_zap(&k->zap_poll, 0, 0); /* anything that came before the poll started */
    LOGN("curve: on for every endpoint; server public key %s; %d client key(s) allowed from %s",
         k->pub.public_key, cv.n_clients, c->transport.curve.clients_dir);
    return 0;
}

/* Step 4 of main: the event sockets, the Wyoming server when configured and
 * the MQTT publisher. Logs what failed; -1 then. */
static int open_outputs(struct kwsd *k) {
    char msg[512];
    if (open_pub(k) < 0)
        return -1;
    if (k->cfg.transport.wyoming[0]) {
        struct wyoming_cfg wc = {.endpoint = k->cfg.transport.wyoming,
                                 .model = &k->set->m[0].model,
                                 .settings = &k->set->m[0].lis.settings,
                                 .model_name = k->set->m[0].name,
                                 .version = KWSD_VERSION};
        if (wyoming_server_open(&k->wy, &k->loop, &wc, msg, sizeof msg) < 0 || wyoming_set(k) < 0) {
            LOGE("%s", msg);
            return -1;
        }
        LOGI("Wyoming wake-word server on %s", k->wy.bound);
    }
    return kwsd_events_open(k) < 0 ? -1 : 0;
}

/* Step 5 of main: the signal handlers (then the signals held since step 0
 * may come), the heartbeat and, under systemd's watchdog, its timer. */
static void start_signals_and_timers(struct kwsd *k, const sigset_t *held) {
    uv_signal_init(&k->loop, &k->sig_int);
    uv_signal_init(&k->loop, &k->sig_term);
    uv_signal_init(&k->loop, &k->sig_hup);
    k->sig_int.data = k->sig_term.data = k->sig_hup.data = k;
    uv_signal_start(&k->sig_int, on_signal, SIGINT);
    uv_signal_start(&k->sig_term, on_signal, SIGTERM);
    uv_signal_start(&k->sig_hup, on_signal, SIGHUP);
    pthread_sigmask(SIG_UNBLOCK, held, NULL);
    uv_timer_init(&k->loop, &k->heartbeat);
    k->heartbeat.data = k;
    uint64_t hb_ms = (uint64_t)(k->cfg.transport.heartbeat_s * 1000.0);
    uv_timer_start(&k->heartbeat, on_heartbeat, hb_ms, hb_ms);
    uv_timer_init(&k->loop, &k->watchdog);
    k->watchdog.data = k;
    uint64_t wd_ms = kwsd_watchdog_ms();
    if (wd_ms)
        uv_timer_start(&k->watchdog, on_watchdog, wd_ms / 2, wd_ms / 2);
}

int main(int argc, char **argv) {
    static struct kwsd kd; /* large: keep it off the stack */
    struct kwsd *k = &kd;
    struct config_diags diags = {0};
    struct kwsd_set *set = NULL;
    int check_only = 0, rc;
    const char *config_path = KWSD_DEFAULT_CONFIG;
    int config_given = 0;
    sigset_t hup;
    char line[512];

    /* One malloc arena for every thread. kwsd's threads (libzmq's, the
     * thread pool, a reload) allocate little, and glibc shrinks a thread's
     * own arena only after reading /proc/sys/vm/overcommit_memory, which the
     * unit's ProcSubset=pid refuses; the main arena is trimmed with brk and
     * malloc_trim gives all of it back. */
    mallopt(M_ARENA_MAX, 1);

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

    rc = parse_args(k, argc, argv, &config_path, &config_given, &check_only);
    if (rc >= 0)
        return rc;

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
    apply_overrides(k, &k->cfg);
    if (!k->log_override)
        k->log_level = k->cfg.logging.level;
    log_setup(k->log_level);

    /* 2. Models, detectors and network states. */
    if (set_build(&set, &k->cfg, &diags) < 0) {
        config_diags_print(&diags, stderr);
        return 1;
    }
    k->set = set;
    if (check_only) {
        printf("%s: ok (%d model(s))\n", k->config_path[0] ? k->config_path : "built-in defaults",
               k->set->n);
        for (int i = 0; i < k->set->n; i++)
            printf("  %s\n", describe_model(k->set, i, line, sizeof line));
        set_free(k->set);
        return 0;
    }
    LOGN("kwsd %s starting (config %s)", KWSD_VERSION,
         k->config_path[0] ? k->config_path : "built-in defaults");
    for (int i = 0; i < k->set->n; i++)
        LOGI("model %s", describe_model(k->set, i, line, sizeof line));
    set_build_pipes(k->set, k, 0, NULL); /* no rate yet: only ties the front ends to k */

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
    if (open_outputs(k) < 0) {
        kwsd_stop(k, 1);
        goto out;
    }

    /* 5. Signals and timers, then tell systemd we are ready. */
    start_signals_and_timers(k, &hup);
    kwsd_notify("READY=1");
    kwsd_notify_status(k);
    LOGN("ready%s", k->cap_waiting ? " (waiting for the capture device)" : "");

out:
    uv_run(&k->loop, UV_RUN_DEFAULT);
    transport_pub_close(&k->pub);
    rc = uv_loop_close(&k->loop);
    if (rc < 0)
        LOGE("event loop did not close cleanly: %s", uv_strerror(rc));
    if (k->file)
        sf_close(k->file);
    free(k->file_buf);
    set_free(k->set);
    LOGI("stopped: %llu frames, %llu detections, %llu input samples replaced by 0, peak RSS %ld "
         "KiB",
         (unsigned long long)k->frames, (unsigned long long)k->detections,
         (unsigned long long)k->bad_samples, peak_rss_kib());
    return k->exit_code;
}

/* test_daemon_mqtt.c: kwsd's MQTT (Hermes) events and pause/resume, with a real broker.
 *
 * The test starts a real mosquitto broker on a free port of 127.0.0.1 (its
 * own mosquitto.conf in a temporary directory), runs the built kwsd on a
 * recording through ALSA's file plugin over a null slave (DESIGN.md), and
 * watches it from both sides: a libmosquitto subscriber to
 * hermes/hotword/+/detected (which also publishes the toggles), and a
 * ZeroMQ subscriber to the detections and the heartbeat. The recording is
 * espeak-ng saying "yes" every 4 s; kwsd-eval computes offline which events
 * the same front end, network and detector make in it, and the daemon's
 * events must be exactly those (seq i at the i-th offline time), so no audio
 * frame was lost whatever happened to the broker.
 *
 * The broker keeps its subscribers' sessions in a persistence file and
 * queues QoS 0 messages for a subscriber that is away, so the subscriber
 * gets what kwsd published after the broker restarts, whichever of the two
 * reconnects first.
 *
 * SPDX-License-Identifier: MIT
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "kwsd_test.h"

#define KWSD KWSD_BINARY_DIR "/daemon/kwsd"
#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define DIGITS KWSD_SOURCE_DIR "/models/digits.kwsm"
#define EVAL KWSD_BINARY_DIR "/tools/kwsd-eval"
#define BROKER "/usr/sbin/mosquitto"
#define SITE "testsite"
#define MAX_EV 256

static char dir[256];
static char endpoint[300];
static int port;
static pid_t broker = -1, kwsd = -1;

/* ==== Helpers ==== */

static const char *path_of(const char *name) {
    return kt_path(dir, name);
}

static char *read_log(const char *name) {
    return kt_read_text(path_of(name));
}

/* Starts mosquitto on port (same persistence file every time) and waits
 * until it accepts connections. Started as root, mosquitto would switch to
 * the user "mosquitto", which cannot write its persistence file into our
 * directory: "user" keeps it as the test's own user. */
static void broker_start(void) {
    char conf[1024];
    struct passwd *pw = getpwuid(getuid());
    cr_assert(not(eq(ptr, pw, NULL)));
    snprintf(conf, sizeof conf,
             "listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
             "persistence_location %s/\nautosave_interval 1\nqueue_qos0_messages true\n"
             "user %s\n",
             port, dir, pw->pw_name);
    kt_write_file(path_of("mosquitto.conf"), conf);
    broker = fork();
    cr_assert(ge(int, broker, 0));
    if (broker == 0) {
        int fd = open(path_of("broker.log"), O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(BROKER, BROKER, "-c", path_of("mosquitto.conf"), (char *)NULL);
        _exit(127);
    }
    int64_t end = kt_now_ms() + 10000;
    while (!kt_port_open(port) && kt_now_ms() < end)
        usleep(20000);
    cr_assert(kt_port_open(port), "mosquitto listens on %d; its log:\n%s", port,
              read_log("broker.log"));
}

/* The broker's log says it saved its database: the subscriber's session
 * survives a kill from now on. */
static int broker_saved(void) {
    return strstr(read_log("broker.log"), "Saving in-memory database") &&
           !strstr(read_log("broker.log"), "Error saving");
}

static void broker_kill(void) {
    if (broker > 0) {
        kill(broker, SIGKILL);
        waitpid(broker, NULL, 0);
        broker = -1;
    }
}

/* ==== The MQTT side: a libmosquitto subscriber on its own thread ==== */

static struct {
    pthread_mutex_t lock;
    struct mosquitto *mosq;
    int n; /* detections received */
    char first_topic[160];
    char first[1024]; /* first payload */
    int bad_topic;    /* detections on a topic other than hermes/hotword/yes/detected */
    int digits, commands; /* detections whose modelId is digits.kwsm, commands.kwsm */
    int wrong_model;      /* detections whose modelId is not the model of their label */
} mq = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void mq_on_connect(struct mosquitto *m, void *obj, int rc) {
    (void)obj;
    if (rc == 0)
        mosquitto_subscribe(m, NULL, "hermes/hotword/+/detected", 1);
}

static void mq_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg) {
    (void)m;
    (void)obj;
    pthread_mutex_lock(&mq.lock);
    if (mq.n == 0) {
        snprintf(mq.first_topic, sizeof mq.first_topic, "%s", msg->topic);
        snprintf(mq.first, sizeof mq.first, "%.*s", msg->payloadlen, (const char *)msg->payload);
    }
    mq.bad_topic += strcmp(msg->topic, "hermes/hotword/yes/detected") != 0;
    /* the digits' labels are digits.kwsm's, every other label commands.kwsm's */
    static const char *const digits[] = {"zero", "one", "two",   "three", "four",
                                         "five", "six", "seven", "eight", "nine"};
    char label[64] = "";
    sscanf(msg->topic, "hermes/hotword/%63[^/]/detected", label);
    int is_digit = 0;
    for (int i = 0; i < 10; i++)
        is_digit |= strcmp(label, digits[i]) == 0;
    json_t *j = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, NULL);
    const char *model = j ? json_string_value(json_object_get(j, "modelId")) : NULL;
    model = model ? model : "";
    mq.digits += strcmp(model, "digits.kwsm") == 0;
    mq.commands += strcmp(model, "commands.kwsm") == 0;
    mq.wrong_model += strcmp(model, is_digit ? "digits.kwsm" : "commands.kwsm") != 0;
    json_decref(j);
    mq.n++;
    pthread_mutex_unlock(&mq.lock);
}

static int mq_count(void) {
    pthread_mutex_lock(&mq.lock);
    int n = mq.n;
    pthread_mutex_unlock(&mq.lock);
    return n;
}

/* A persistent session (clean_session false, QoS 1 subscription): the
 * broker keeps it across its own restart and queues for it meanwhile. */
static void mq_open(void) {
    mosquitto_lib_init();
    mq.mosq = mosquitto_new("kwsd-test-subscriber", false, NULL);
    cr_assert(not(eq(ptr, mq.mosq, NULL)));
    mosquitto_connect_callback_set(mq.mosq, mq_on_connect);
    mosquitto_message_callback_set(mq.mosq, mq_on_message);
    mosquitto_reconnect_delay_set(mq.mosq, 1, 1, false);
    cr_assert(eq(int, mosquitto_connect(mq.mosq, "127.0.0.1", port, 30), MOSQ_ERR_SUCCESS));
    cr_assert(eq(int, mosquitto_loop_start(mq.mosq), MOSQ_ERR_SUCCESS));
}

static void mq_publish(const char *topic, const char *payload) {
    cr_assert(eq(int,
                 mosquitto_publish(mq.mosq, NULL, topic, (int)strlen(payload), payload, 1, false),
                 MOSQ_ERR_SUCCESS));
}

static void mq_close(void) {
    if (!mq.mosq)
        return;
    mosquitto_disconnect(mq.mosq);
    mosquitto_loop_stop(mq.mosq, true);
    mosquitto_destroy(mq.mosq);
    mq.mosq = NULL;
    mosquitto_lib_cleanup();
}

/* ==== The ZeroMQ side: detections and heartbeats ==== */

static struct {
    void *ctx, *sock;
    int n;                  /* detections received */
    int64_t seq[MAX_EV];    /* their seq */
    int64_t end_ms[MAX_EV]; /* their end_ms */
    int heartbeats;
    double frames; /* last heartbeat's */
    int paused;
    int64_t suppressed, detections, mqtt_dropped;
    char mqtt[32];
} zq;

/* zq's socket: a SUB to every kws. topic of the test's endpoint. */
static void zq_open(void) {
    zq.ctx = zmq_ctx_new();
    zq.sock = zmq_socket(zq.ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(zq.sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(zq.sock, ZMQ_SUBSCRIBE, "kws.", 4);
    cr_assert(eq(int, zmq_connect(zq.sock, endpoint), 0));
}

/* Reads every message that arrives within ms, updating zq. */
static void zq_pump(int ms) {
    int64_t end = kt_now_ms() + ms;
    char topic[128], body[4096];
    do {
        zmq_pollitem_t it = {.socket = zq.sock, .events = ZMQ_POLLIN};
        int left = (int)(end - kt_now_ms());
        if (zmq_poll(&it, 1, left > 0 ? left : 0) <= 0)
            continue;
        int n = zmq_recv(zq.sock, topic, sizeof topic - 1, 0);
        cr_assert(gt(int, n, 0));
        topic[n] = '\0';
        n = zmq_recv(zq.sock, body, sizeof body - 1, 0);
        cr_assert(gt(int, n, 0));
        body[n] = '\0';
        json_t *j = json_loads(body, 0, NULL);
        cr_assert(not(eq(ptr, j, NULL)), "JSON: %s", body);
        if (strcmp(topic, "kws.status") == 0) {
            zq.heartbeats++;
            zq.frames = json_number_value(json_object_get(j, "frames"));
            zq.paused = json_is_true(json_object_get(j, "paused"));
            zq.suppressed = json_integer_value(json_object_get(j, "suppressed"));
            zq.detections = json_integer_value(json_object_get(j, "detections"));
            zq.mqtt_dropped = json_integer_value(json_object_get(j, "mqtt_dropped"));
            const char *s = json_string_value(json_object_get(j, "mqtt"));
            snprintf(zq.mqtt, sizeof zq.mqtt, "%s", s ? s : "(none)");
        } else if (zq.n < MAX_EV) {
            zq.seq[zq.n] = json_integer_value(json_object_get(j, "seq"));
            zq.end_ms[zq.n++] = json_integer_value(json_object_get(j, "end_ms"));
        }
        json_decref(j);
    } while (kt_now_ms() < end);
}

/* Pumps until cond() holds, at most ms; asserts it does, naming what. */
#define WAIT_FOR(cond, ms, what)                                                                   \
    do {                                                                                           \
        int64_t until_ = kt_now_ms() + (ms);                                                          \
        while (!(cond) && kt_now_ms() < until_)                                                       \
            zq_pump(50);                                                                           \
        cr_assert(eq(int, (cond) ? 1 : 0, 1),                                                      \
                  "%s (mqtt %s, paused %d, frames %.0f, zmq events %d, mqtt events %d); "          \
                  "kwsd log:\n%s",                                                                 \
                  what, zq.mqtt, zq.paused, zq.frames, zq.n, mq_count(), read_log("kwsd.log"));    \
    } while (0)

/* ==== Set-up ==== */

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kwsd-mqtt-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(dir), NULL)));
    snprintf(endpoint, sizeof endpoint, "ipc://%s/events", dir);
    port = kt_free_port();
}

static void teardown(void) {
    if (kwsd > 0) {
        kill(kwsd, SIGKILL);
        waitpid(kwsd, NULL, 0);
        kwsd = -1;
    }
    mq_close();
    broker_kill();
    if (zq.sock) {
        zmq_close(zq.sock);
        zmq_ctx_term(zq.ctx);
        zq.sock = NULL;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(mqtt, .init = setup, .fini = teardown, .timeout = 240);

/* dir/audio.raw: 2 s of quiet, then "yes" (espeak-ng) at the start of each
 * of n 4 s slots, and dir/speech.wav, the same as WAV for kwsd-eval. */
static void make_recording(int n) {
    kt_sh("espeak-ng -v en-us -s 150 -w %s/yes.22k.wav yes", dir);
    kt_sh("sox %s/yes.22k.wav -r 16000 -c 1 -b 16 %s/yes.wav norm -3 pad 0 4", dir, dir);
    kt_sh("sox %s/yes.wav %s/slot.wav trim 0 4", dir, dir);
    kt_sh("sox %s/slot.wav %s/slots.wav repeat %d", dir, dir, n - 1);
    kt_sh("sox -n -r 16000 -c 1 -b 16 %s/lead.wav trim 0 2", dir);
    kt_sh("sox %s/lead.wav %s/slots.wav %s/speech.wav", dir, dir, dir);
    kt_sh("sox %s/speech.wav -t raw -e signed -b 16 -r 16000 -c 1 %s/audio.raw", dir, dir);
    kt_write_testmic(dir, "audio.raw");
}

/* The end times (ms) of the events kwsd-eval finds in dir/speech.wav. */
static int eval_end_ms(int64_t *end_ms, int max) {
    kt_sh("%s --model %s --threshold 0.8 --wav %s/speech.wav > %s/eval.txt 2>&1", EVAL, MODEL, dir,
       dir);
    FILE *f = fopen(path_of("eval.txt"), "r");
    cr_assert(not(eq(ptr, f, NULL)));
    char line[512], word[32];
    double t;
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, " %lf s: %31s (", &t, word) == 2 && n < max) {
            cr_assert(eq(str, word, "yes"), "kwsd-eval hears only yes: %s", line);
            end_ms[n++] = (int64_t)llround(t * 1000.0);
        }
    fclose(f);
    return n;
}

static void start_kwsd(void) {
    char text[1024];
    snprintf(text, sizeof text,
             "audio:\n  device: testmic\n  rate: 16000\n"
             "model:\n  path: %s\n"
             "detection:\n  threshold: 0.8\n"
             "transport:\n  endpoints: [ \"%s\" ]\n  heartbeat_s: 0.5\n"
             "mqtt:\n  host: 127.0.0.1\n  port: %d\n  site_id: %s\n",
             MODEL, endpoint, port, SITE);
    kt_write_file(path_of("kwsd.yaml"), text);
    kwsd = kt_spawn_kwsd(dir, NULL, NULL);
}

/* ==== The test ==== */

/* One run through every state: publishing, a toggleOff for another site
 * (ignored), toggleOff and toggleOn for kwsd's site, SIGUSR1 and SIGUSR2,
 * the broker killed and restarted on the same port. At the end kwsd is
 * paused so that nothing more is in flight, and the accounts must balance:
 * the MQTT subscriber got exactly the detections ZeroMQ carried, ZeroMQ's
 * seq numbers miss exactly the detections the heartbeat counts as held
 * back while paused, and every event came at the time kwsd-eval computes
 * for the same recording, so no audio frame was lost on the way. */
Test(mqtt, hermes_events_toggles_and_a_broker_that_dies) {
    struct stat st;
    int64_t want[MAX_EV];

    cr_assert(eq(int, stat(BROKER, &st), 0), "%s missing: scripts/setup installs mosquitto",
              BROKER);
    if (stat(MODEL, &st) != 0)
        cr_skip_test("no trained model at %s yet", MODEL);
    make_recording(100);
    int n_want = eval_end_ms(want, MAX_EV);
    cr_assert(ge(int, n_want, 90), "kwsd-eval hears most of the 100 yeses (%d)", n_want);

    broker_start();
    mq_open();
    zq_open();
    start_kwsd();

    /* 1. Detections arrive on MQTT with the Hermes fields. */
    WAIT_FOR(strcmp(zq.mqtt, "connected") == 0, 10000, "kwsd connects to the broker");
    WAIT_FOR(mq_count() >= 2, 20000, "two detections on MQTT");
    pthread_mutex_lock(&mq.lock);
    char first[1024], first_topic[160];
    snprintf(first, sizeof first, "%s", mq.first);
    snprintf(first_topic, sizeof first_topic, "%s", mq.first_topic);
    pthread_mutex_unlock(&mq.lock);
    cr_log_info("first MQTT message: %s %s", first_topic, first);
    cr_expect(eq(str, first_topic, "hermes/hotword/yes/detected"));
    json_t *j = json_loads(first, 0, NULL);
    cr_assert(not(eq(ptr, j, NULL)), "JSON payload: %s", first);
    cr_expect(eq(str, (char *)json_string_value(json_object_get(j, "siteId")), SITE));
    cr_expect(eq(str, (char *)json_string_value(json_object_get(j, "modelId")), "commands.kwsm"));
    cr_expect(eq(int, json_is_string(json_object_get(j, "modelVersion")) ? 1 : 0, 1),
              "modelVersion is a string");
    cr_expect(eq(str, (char *)json_string_value(json_object_get(j, "modelType")), "personal"));
    cr_expect(ieee_ulp_eq(dbl, json_number_value(json_object_get(j, "currentSensitivity")), 0.2, 4),
              "currentSensitivity is 1 - threshold: %s", first);
    cr_expect(eq(int, json_is_null(json_object_get(j, "sessionId")) ? 1 : 0, 1),
              "sessionId is null");
    json_decref(j);

    /* 2. A toggleOff for another site changes nothing. */
    int before = mq_count();
    mq_publish("hermes/hotword/toggleOff", "{\"siteId\":\"elsewhere\"}");
    WAIT_FOR(mq_count() >= before + 3, 20000, "detections go on after another site's toggleOff");
    cr_assert(eq(int, zq.paused, 0));

    /* 3. toggleOff for our site: paused; audio goes on, nothing is published. */
    mq_publish("hermes/hotword/toggleOff", "{\"siteId\":\"" SITE "\"}");
    WAIT_FOR(zq.paused, 5000, "toggleOff pauses");
    double frames_paused = zq.frames;
    WAIT_FOR(zq.suppressed >= 3, 20000, "detections are made and held back while paused");
    cr_assert(gt(dbl, zq.frames, frames_paused), "audio flows while paused");

    /* 4. toggleOn: publishing resumes. */
    before = mq_count();
    mq_publish("hermes/hotword/toggleOn", "{\"siteId\":\"" SITE "\"}");
    WAIT_FOR(!zq.paused, 5000, "toggleOn resumes");
    WAIT_FOR(mq_count() >= before + 2, 20000, "detections on MQTT after toggleOn");

    /* 5. SIGUSR1 pauses too; the broker dies meanwhile (once it has saved
     * the subscriber's session). */
    kill(kwsd, SIGUSR1);
    WAIT_FOR(zq.paused, 5000, "SIGUSR1 pauses");
    WAIT_FOR(broker_saved(), 5000, "the broker saves its database");
    broker_kill();
    WAIT_FOR(strcmp(zq.mqtt, "connected") != 0, 5000, "kwsd sees the broker go");
    double frames_down = zq.frames;

    /* 6. SIGUSR2 resumes while the broker is away: detections go out on
     * ZeroMQ and wait in kwsd's MQTT queue. */
    int zq_before = zq.n;
    kill(kwsd, SIGUSR2);
    WAIT_FOR(!zq.paused && zq.n >= zq_before + 3, 20000, "SIGUSR2 resumes; detections on ZeroMQ");
    int64_t held_back = zq.suppressed; /* final until the pause of step 8 */
    cr_assert(gt(dbl, zq.frames, frames_down), "audio flows while the broker is away");
    cr_assert(not(eq(str, zq.mqtt, "connected")));

    /* 7. The broker comes back on the same port: kwsd reconnects, sends
     * what it held, and goes on publishing. */
    broker_start();
    WAIT_FOR(strcmp(zq.mqtt, "connected") == 0, 40000, "kwsd reconnects");
    zq_before = zq.n;
    WAIT_FOR(zq.n >= zq_before + 3, 20000, "detections after the reconnect");

    /* 8. Pause for the count: then nothing more is in flight. */
    kill(kwsd, SIGUSR1);
    WAIT_FOR(zq.paused, 5000, "SIGUSR1 pauses at the end");
    zq_pump(500);
    WAIT_FOR(mq_count() == zq.n, 15000, "MQTT gets exactly the detections ZeroMQ carried");
    cr_expect(eq(i64, zq.mqtt_dropped, 0), "no MQTT message dropped");
    cr_expect(eq(int, mq.bad_topic, 0));

    kill(kwsd, SIGTERM);
    int status;
    waitpid(kwsd, &status, 0);
    kwsd = -1;
    cr_log_info("kwsd log:\n%s", read_log("kwsd.log"));
    cr_log_info("broker log:\n%s", read_log("broker.log"));
    cr_expect(eq(int, status, 0), "kwsd exits cleanly");

    /* Seq numbers: those ZeroMQ never carried are the ones held back by the
     * pauses of steps 3 and 5. */
    int64_t last_seq = zq.seq[zq.n - 1];
    cr_expect(eq(i64, last_seq - zq.n, held_back),
              "%lld detections, %d published, %lld held back while paused", (long long)last_seq,
              zq.n, (long long)held_back);
    /* Every event at its offline time: seq i is kwsd-eval's i-th event. */
    for (int i = 0; i < zq.n; i++) {
        int64_t s = zq.seq[i];
        cr_assert(le(i64, s, n_want), "seq %lld within the offline events", (long long)s);
        cr_expect(le(i64, llabs(zq.end_ms[i] - want[s - 1]), 10),
                  "event seq %lld at %lld ms, offline %lld ms", (long long)s,
                  (long long)zq.end_ms[i], (long long)want[s - 1]);
    }
}

/* Whether MQTT has brought detections of both models. */
static int mq_both_models(void) {
    pthread_mutex_lock(&mq.lock);
    int both = mq.commands >= 1 && mq.digits >= 1;
    pthread_mutex_unlock(&mq.lock);
    return both;
}

/* Two models (commands.kwsm and digits.kwsm, each at its own calibrated
 * threshold): each detection's modelId names the model whose label it is,
 * and both models' detections arrive. */
Test(mqtt, two_models_each_detection_names_its_model) {
    struct stat st;
    char text[1024];

    cr_assert(eq(int, stat(BROKER, &st), 0), "%s missing: scripts/setup installs mosquitto",
              BROKER);
    static const char *const words[] = {"yes", "three", "go", "seven"};
    kt_sh("sox -n -r 16000 -c 1 -b 16 %s/lead.wav trim 0 2", dir);
    for (int i = 0; i < 4; i++) {
        kt_sh("espeak-ng -v en-us -s 150 -w %s/w.22k.wav %s", dir, words[i]);
        kt_sh("sox %s/w.22k.wav -r 16000 -c 1 -b 16 %s/w%d.wav norm -3 pad 0 1.5", dir, dir, i);
    }
    kt_sh("sox %s/lead.wav %s/w0.wav %s/w1.wav %s/w2.wav %s/w3.wav %s/lead.wav -t raw -e signed "
          "-b 16 %s/audio.raw",
          dir, dir, dir, dir, dir, dir, dir);
    kt_write_testmic(dir, "audio.raw");
    broker_start();
    mq_open();
    zq_open();
    snprintf(text, sizeof text,
             "audio:\n  device: testmic\n  rate: 16000\n"
             "model:\n  paths: [ %s, %s ]\n"
             "transport:\n  endpoints: [ \"%s\" ]\n  heartbeat_s: 0.5\n"
             "mqtt:\n  host: 127.0.0.1\n  port: %d\n  site_id: %s\n",
             MODEL, DIGITS, endpoint, port, SITE);
    kt_write_file(path_of("kwsd.yaml"), text);
    kwsd = kt_spawn_kwsd(dir, NULL, NULL);
    WAIT_FOR(mq_both_models(), 30000, "detections of both models on MQTT");
    pthread_mutex_lock(&mq.lock);
    int wrong = mq.wrong_model, n = mq.n;
    pthread_mutex_unlock(&mq.lock);
    cr_expect(eq(int, wrong, 0), "every modelId names its label's model (%d of %d do not)", wrong,
              n);
}

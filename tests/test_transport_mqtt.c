/* test_transport_mqtt.c: the MQTT publisher (kws/mqtt.h) on a libuv loop, against a real broker.
 *
 * The test thread drives the publisher's loop itself (uv_run in short
 * turns), so it decides when the publisher may retry: a broker and a
 * subscriber are set up while the loop stands still. The broker is the real
 * mosquitto on a free port of 127.0.0.1; the subscriber is libmosquitto on
 * its own thread.
 *
 * SPDX-License-Identifier: MIT
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "kws/mqtt.h"
#include "kwsd_test.h"

#define BROKER "/usr/sbin/mosquitto"

static char dir[256];
static int port;
static pid_t broker = -1;
static uv_loop_t loop;

/* ==== Helpers ==== */

static void sh(const char *cmd) {
    cr_assert(eq(int, system(cmd), 0), "command failed: %s", cmd);
}

/* Starts mosquitto on port with extra lines of configuration after the
 * listener ("allow_anonymous true" when NULL). "user" keeps it as the
 * test's user (as root it would switch to "mosquitto", who cannot read our
 * files). */
static void broker_start_with(const char *extra) {
    char conf[2048], path[300];
    struct passwd *pw = getpwuid(getuid());
    cr_assert(not(eq(ptr, pw, NULL)));
    snprintf(path, sizeof path, "%s/mosquitto.conf", dir);
    snprintf(conf, sizeof conf, "listener %d 127.0.0.1\nuser %s\n%s", port, pw->pw_name,
             extra ? extra : "allow_anonymous true\n");
    FILE *f = fopen(path, "w");
    cr_assert(not(eq(ptr, f, NULL)));
    fputs(conf, f);
    fclose(f);
    broker = fork();
    cr_assert(ge(int, broker, 0));
    if (broker == 0) {
        char log[300];
        snprintf(log, sizeof log, "%s/broker.log", dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(BROKER, BROKER, "-c", path, (char *)NULL);
        _exit(127);
    }
    int64_t end = kt_now_ms() + 10000;
    while (!kt_port_open(port) && kt_now_ms() < end)
        usleep(20000);
    cr_assert(kt_port_open(port), "mosquitto listens on %d", port);
}

static void broker_start(void) {
    broker_start_with(NULL);
}

/* Runs the loop in short turns for up to ms, or until *flag is true. */
static void spin(int ms, const volatile int *flag) {
    int64_t end = kt_now_ms() + ms;
    while (kt_now_ms() < end && !(flag && *flag)) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
}

/* ==== A subscriber on its own thread ==== */

#define MAX_GOT 64
static struct {
    pthread_mutex_t lock;
    struct mosquitto *mosq;
    int subscribed;
    int n;
    char topic[MAX_GOT][160];
    char payload[MAX_GOT][600];
} sub = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void sub_on_connect(struct mosquitto *m, void *o, int rc) {
    (void)o;
    if (rc == 0)
        mosquitto_subscribe(m, NULL, "hermes/hotword/+/detected", 0);
}

static void sub_on_subscribe(struct mosquitto *m, void *o, int mid, int n, const int *q) {
    (void)m, (void)o, (void)mid, (void)n, (void)q;
    pthread_mutex_lock(&sub.lock);
    sub.subscribed = 1;
    pthread_mutex_unlock(&sub.lock);
}

static void sub_on_message(struct mosquitto *m, void *o, const struct mosquitto_message *msg) {
    (void)m, (void)o;
    pthread_mutex_lock(&sub.lock);
    if (sub.n < MAX_GOT) {
        snprintf(sub.topic[sub.n], sizeof sub.topic[0], "%s", msg->topic);
        snprintf(sub.payload[sub.n], sizeof sub.payload[0], "%.*s", msg->payloadlen,
                 (const char *)msg->payload);
    }
    sub.n++;
    pthread_mutex_unlock(&sub.lock);
}

static int sub_get(int *subscribed) {
    pthread_mutex_lock(&sub.lock);
    int n = sub.n;
    if (subscribed)
        *subscribed = sub.subscribed;
    pthread_mutex_unlock(&sub.lock);
    return n;
}

/* Connects the subscriber; with ca (may be NULL) over TLS to "localhost",
 * with user (may be NULL) and password. */
static void sub_open_as(const char *ca, const char *user, const char *password) {
    mosquitto_lib_init();
    sub.mosq = mosquitto_new(NULL, true, NULL);
    if (ca)
        cr_assert(eq(int, mosquitto_tls_set(sub.mosq, ca, NULL, NULL, NULL, NULL), 0));
    if (user)
        cr_assert(eq(int, mosquitto_username_pw_set(sub.mosq, user, password), 0));
    mosquitto_connect_callback_set(sub.mosq, sub_on_connect);
    mosquitto_subscribe_callback_set(sub.mosq, sub_on_subscribe);
    mosquitto_message_callback_set(sub.mosq, sub_on_message);
    cr_assert(eq(int, mosquitto_connect(sub.mosq, ca ? "localhost" : "127.0.0.1", port, 30),
                 MOSQ_ERR_SUCCESS));
    cr_assert(eq(int, mosquitto_loop_start(sub.mosq), MOSQ_ERR_SUCCESS));
    int64_t end = kt_now_ms() + 5000;
    int ok = 0;
    while (!ok && kt_now_ms() < end) {
        sub_get(&ok);
        usleep(10000);
    }
    cr_assert(ok, "the subscriber is subscribed");
}

static void sub_open(void) {
    sub_open_as(NULL, NULL, NULL);
}

static void publish_raw(const char *topic, const char *payload) {
    cr_assert(eq(int,
                 mosquitto_publish(sub.mosq, NULL, topic, (int)strlen(payload), payload, 0, false),
                 MOSQ_ERR_SUCCESS));
}

/* ==== Fixture ==== */

static struct {
    int n;    /* toggles received */
    int last; /* paused of the last one */
} toggles;

static volatile int closed;

static void on_toggle(void *ctx, int paused) {
    (void)ctx;
    toggles.n++;
    toggles.last = paused;
}

static void on_closed(struct transport_mqtt *m) {
    (void)m;
    closed = 1;
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kwsd-mqtt-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(dir), NULL)));
    port = kt_free_port();
    cr_assert(eq(int, uv_loop_init(&loop), 0));
    memset(&toggles, 0, sizeof toggles);
    closed = 0;
}

static void teardown(void) {
    if (sub.mosq) {
        mosquitto_disconnect(sub.mosq);
        mosquitto_loop_stop(sub.mosq, true);
        mosquitto_destroy(sub.mosq);
        sub.mosq = NULL;
    }
    if (broker > 0) {
        kill(broker, SIGKILL);
        waitpid(broker, NULL, 0);
        broker = -1;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(transport_mqtt, .init = setup, .fini = teardown, .timeout = 60);

/* Closes m and requires the loop to end with every handle closed. */
static void close_and_finish(struct transport_mqtt *m) {
    transport_mqtt_close(m, on_closed);
    spin(10000, &closed);
    cr_assert(eq(int, closed, 1), "on_closed runs");
    cr_assert(eq(int, uv_run(&loop, UV_RUN_DEFAULT), 0));
    cr_assert(eq(int, uv_loop_close(&loop), 0), "nothing left on the loop");
}

/* ==== Tests ==== */

/* With no broker, detections wait in the ring; past TRANSPORT_MQTT_QUEUE_LEN the
 * oldest are dropped and counted. When the broker comes, the publisher
 * reconnects by itself and sends what it holds, oldest first. */
Test(transport_mqtt, the_queue_drops_the_oldest_and_sends_the_rest_in_order) {
    struct transport_mqtt m;
    struct transport_mqtt_stats st;
    struct transport_mqtt_cfg cfg = {.host = "127.0.0.1", .port = port, .site_id = "s1"};
    char msg[256], label[16];
    int total = TRANSPORT_MQTT_QUEUE_LEN + 8;

    cr_assert(eq(int, transport_mqtt_open(&m, &loop, &cfg, on_toggle, NULL, msg, sizeof msg), 0),
              "%s", msg);
    spin(300, NULL);
    transport_mqtt_get_stats(&m, &st);
    cr_assert(ge(u32, st.failures, 1), "the first attempt fails: nothing listens");
    cr_assert(eq(int, st.state == TRANSPORT_MQTT_STATE_CONNECTED, 0));
    for (int i = 0; i < total; i++) {
        snprintf(label, sizeof label, "w%d", i);
        struct transport_mqtt_detection d = {.label = label, .model = "m.kwsm", .threshold = 0.75f};
        cr_assert(eq(int, transport_mqtt_publish(&m, &d), 0));
    }
    transport_mqtt_get_stats(&m, &st);
    cr_assert(eq(u64, st.queued, TRANSPORT_MQTT_QUEUE_LEN));
    cr_assert(eq(u64, st.dropped, 8));

    /* The loop stands still while broker and subscriber come up. */
    broker_start();
    sub_open();
    int64_t end = kt_now_ms() + 20000;
    while (kt_now_ms() < end && sub_get(NULL) < TRANSPORT_MQTT_QUEUE_LEN)
        spin(50, NULL);
    transport_mqtt_get_stats(&m, &st);
    cr_assert(eq(int, (int)st.state, (int)TRANSPORT_MQTT_STATE_CONNECTED));
    cr_assert(eq(u64, st.queued, 0));
    cr_assert(eq(u64, st.sent, TRANSPORT_MQTT_QUEUE_LEN));
    cr_assert(eq(int, sub_get(NULL), TRANSPORT_MQTT_QUEUE_LEN),
              "the subscriber gets every held message");
    for (int i = 0; i < TRANSPORT_MQTT_QUEUE_LEN; i++) {
        char want[64];
        snprintf(want, sizeof want, "hermes/hotword/w%d/detected", i + 8);
        cr_assert(eq(str, sub.topic[i], want), "message %d in order", i);
    }
    cr_assert(eq(str, sub.payload[0],
                 "{\"siteId\":\"s1\",\"modelId\":\"m.kwsm\",\"modelVersion\":\"\","
                 "\"modelType\":\"personal\",\"currentSensitivity\":0.25,\"sessionId\":null}"));
    close_and_finish(&m);
}

/* Only toggles for our siteId count: another site's, one without a siteId
 * (that is "default"), and one that is not JSON are ignored. Messages on
 * one connection arrive in order, so once the last one's callback has run
 * the earlier ones have been judged. Labels that cannot be one topic level
 * are refused. */
Test(transport_mqtt, toggles_for_this_site_only) {
    struct transport_mqtt m;
    struct transport_mqtt_cfg cfg = {.host = "127.0.0.1", .port = port, .site_id = "s1"};
    char msg[256];

    broker_start();
    sub_open();
    cr_assert(eq(int, transport_mqtt_open(&m, &loop, &cfg, on_toggle, NULL, msg, sizeof msg), 0),
              "%s", msg);
    struct transport_mqtt_stats st = {0};
    int64_t end = kt_now_ms() + 10000;
    while (kt_now_ms() < end && st.state != TRANSPORT_MQTT_STATE_CONNECTED) {
        spin(20, NULL);
        transport_mqtt_get_stats(&m, &st);
    }
    cr_assert(eq(int, (int)st.state, (int)TRANSPORT_MQTT_STATE_CONNECTED));
    spin(300, NULL); /* let the subscriptions be acknowledged */

    publish_raw("hermes/hotword/toggleOff", "{\"siteId\":\"other\"}");
    publish_raw("hermes/hotword/toggleOff", "{}");
    publish_raw("hermes/hotword/toggleOff", "not json");
    publish_raw("hermes/hotword/toggleOff", "[\"s1\"]");
    publish_raw("hermes/hotword/toggleOff", "{\"siteId\":\"s1\"}");
    end = kt_now_ms() + 5000;
    while (kt_now_ms() < end && toggles.n < 1)
        spin(20, NULL);
    cr_assert(eq(int, toggles.n, 1), "one toggle counts");
    cr_assert(eq(int, toggles.last, 1), "toggleOff pauses");
    publish_raw("hermes/hotword/toggleOn", "{\"siteId\":\"s1\",\"reason\":\"ttsSay\"}");
    end = kt_now_ms() + 5000;
    while (kt_now_ms() < end && toggles.n < 2)
        spin(20, NULL);
    cr_assert(eq(int, toggles.n, 2));
    cr_assert(eq(int, toggles.last, 0), "toggleOn resumes");

    static const char *const bad[] = {"a/b", "a+b", "a#", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct transport_mqtt_detection d = {.label = bad[i], .model = "m", .threshold = 0.5f};
        cr_assert(eq(int, transport_mqtt_publish(&m, &d), -EINVAL), "label \"%s\"", bad[i]);
    }
    close_and_finish(&m);
}

/* Closing right after open (the connect still on the thread pool) and
 * closing while waiting to retry both end with an empty loop. */
Test(transport_mqtt, close_at_any_time) {
    struct transport_mqtt m;
    struct transport_mqtt_cfg cfg = {.host = "127.0.0.1", .port = port};
    char msg[256];

    cr_assert(eq(int, transport_mqtt_open(&m, &loop, &cfg, NULL, NULL, msg, sizeof msg), 0));
    close_and_finish(&m);

    closed = 0;
    cr_assert(eq(int, uv_loop_init(&loop), 0));
    cr_assert(eq(int, transport_mqtt_open(&m, &loop, &cfg, NULL, NULL, msg, sizeof msg), 0));
    spin(300, NULL);
    struct transport_mqtt_stats st;
    transport_mqtt_get_stats(&m, &st);
    cr_assert(eq(int, (int)st.state, (int)TRANSPORT_MQTT_STATE_DISCONNECTED));
    close_and_finish(&m);
}

/* Bad settings are refused with a message naming the key. */
Test(transport_mqtt, bad_settings) {
    struct transport_mqtt m;
    char msg[256];
    struct transport_mqtt_cfg cfg = {.host = "127.0.0.1", .port = 0};

    cr_assert(eq(int, transport_mqtt_open(&m, &loop, &cfg, NULL, NULL, msg, sizeof msg), -EINVAL));
    cr_assert(eq(str, msg, "mqtt.port: 0 out of range [1, 65535]"));
    cfg = (struct transport_mqtt_cfg){.host = "h", .port = 1883, .password_file = "/nonexistent"};
    cr_assert(eq(int, transport_mqtt_open(&m, &loop, &cfg, NULL, NULL, msg, sizeof msg), -ENOENT));
    cr_assert(eq(str, msg, "mqtt.password_file: /nonexistent: No such file or directory"));
    cfg.password_file = "/tmp";
    cr_assert(eq(int, transport_mqtt_open(&m, &loop, &cfg, NULL, NULL, msg, sizeof msg), -EISDIR));
    cr_assert(eq(str, msg, "mqtt.password_file: /tmp: a directory, not a regular file"));
    cfg = (struct transport_mqtt_cfg){.host = "h", .port = 1883, .ca_file = "/nonexistent"};
    cr_assert(lt(int, transport_mqtt_open(&m, &loop, &cfg, NULL, NULL, msg, sizeof msg), 0));
    cr_assert(eq(str, msg, "mqtt.tls: /nonexistent: cannot read it"));
    cr_assert(eq(int, uv_loop_close(&loop), 0), "a failed open leaves nothing on the loop");
}

/* Runs the loop until m is connected, at most ms; returns the state. */
static enum transport_mqtt_state wait_connected(struct transport_mqtt *m, int ms) {
    struct transport_mqtt_stats st = {0};
    int64_t end = kt_now_ms() + ms;
    while (kt_now_ms() < end && st.state != TRANSPORT_MQTT_STATE_CONNECTED) {
        spin(20, NULL);
        transport_mqtt_get_stats(m, &st);
    }
    return st.state;
}

/* TLS with the broker's name checked against its certificate, and a user
 * name with its password read from a file: a detection gets through. The
 * same client with a wrong password is refused and keeps retrying. */
Test(transport_mqtt, tls_and_password) {
    char cmd[2048], ca[300], pwfile[300], badfile[300], extra[1536], msg[256];

    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kwsd-test-ca "
             "-keyout ca.key -out ca.crt 2>/dev/null && "
             "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key "
             "-out server.csr 2>/dev/null && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile san.ext -out server.crt 2>/dev/null && "
             "mosquitto_passwd -b -c passwd kws s3cret && printf 's3cret\\n' > pw && "
             "printf 'wrong\\n' > badpw",
             dir);
    sh(cmd);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(pwfile, sizeof pwfile, "%s/pw", dir);
    snprintf(badfile, sizeof badfile, "%s/badpw", dir);
    snprintf(extra, sizeof extra,
             "cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\n"
             "allow_anonymous false\npassword_file %s/passwd\n",
             dir, dir, dir, dir);
    broker_start_with(extra);
    sub_open_as(ca, "kws", "s3cret");

    struct transport_mqtt m, bad;
    struct transport_mqtt_cfg cfg = {.host = "localhost",
                                     .port = port,
                                     .ca_file = ca,
                                     .username = "kws",
                                     .password_file = pwfile};
    cr_assert(eq(int, transport_mqtt_open(&m, &loop, &cfg, NULL, NULL, msg, sizeof msg), 0), "%s",
              msg);
    cfg.password_file = badfile;
    cr_assert(eq(int, transport_mqtt_open(&bad, &loop, &cfg, NULL, NULL, msg, sizeof msg), 0), "%s",
              msg);
    cr_assert(eq(int, (int)wait_connected(&m, 10000), (int)TRANSPORT_MQTT_STATE_CONNECTED),
              "TLS connection with the right password");
    struct transport_mqtt_detection d = {.label = "go", .model = "m.kwsm", .threshold = 0.5f};
    cr_assert(eq(int, transport_mqtt_publish(&m, &d), 0));
    int64_t end = kt_now_ms() + 5000;
    while (kt_now_ms() < end && sub_get(NULL) < 1)
        spin(20, NULL);
    cr_assert(eq(int, sub_get(NULL), 1), "the subscriber gets it over TLS");
    cr_assert(eq(str, sub.topic[0], "hermes/hotword/go/detected"));
    spin(1500, NULL);
    struct transport_mqtt_stats st;
    transport_mqtt_get_stats(&bad, &st);
    cr_assert(eq(u32, st.connects, 0), "a wrong password is refused");
    cr_assert(ge(u32, st.failures, 1));
    transport_mqtt_close(&bad, NULL);
    close_and_finish(&m);
}

/* A "broker" that accepts the connection and the CONNECT, answers CONNACK,
 * then never reads again: the publisher's socket fills, and detections go
 * to the bounded ring (the oldest dropped and counted) instead of piling
 * up in libmosquitto, and no publish waits for the broker (the socket is
 * non-blocking; a blocking write would hang this test). */
static int slow_fd = -1;

static void *slow_broker(void *arg) {
    int lfd = *(int *)arg;
    int fd = accept(lfd, NULL, NULL);
    unsigned char buf[512];
    static const unsigned char connack[] = {0x20, 0x02, 0x00, 0x00};
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf); /* CONNECT */
    if (n > 0 && write(fd, connack, sizeof connack) != (ssize_t)sizeof connack)
        n = -1;
    slow_fd = fd; /* and never read again */
    return NULL;
}

Test(transport_mqtt, a_broker_that_stops_reading) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), small = 4096;
    setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    cr_assert(eq(int, bind(lfd, (struct sockaddr *)&a, sizeof a), 0));
    cr_assert(eq(int, listen(lfd, 1), 0));
    getsockname(lfd, (struct sockaddr *)&a, &len);
    pthread_t th;
    pthread_create(&th, NULL, slow_broker, &lfd);

    struct transport_mqtt m;
    struct transport_mqtt_cfg cfg = {.host = "127.0.0.1", .port = ntohs(a.sin_port)};
    char msg[256];
    cr_assert(eq(int, transport_mqtt_open(&m, &loop, &cfg, NULL, NULL, msg, sizeof msg), 0));
    cr_assert(eq(int, (int)wait_connected(&m, 5000), (int)TRANSPORT_MQTT_STATE_CONNECTED));
    pthread_join(th, NULL);

    /* Publish until the ring has had to drop, a turn of the loop between
     * publishes as in the daemon. */
    struct transport_mqtt_stats st = {0};
    int n = 0;
    while (st.dropped < 10 && n < 200000) {
        struct transport_mqtt_detection d = {.label = "yes", .model = "m.kwsm", .threshold = 0.5f};
        cr_assert(eq(int, transport_mqtt_publish(&m, &d), 0));
        n++;
        uv_run(&loop, UV_RUN_NOWAIT);
        transport_mqtt_get_stats(&m, &st);
    }
    cr_log_info("%d publishes: %llu handed to the socket, %llu queued, %llu dropped", n,
                (unsigned long long)st.sent, (unsigned long long)st.queued,
                (unsigned long long)st.dropped);
    cr_assert(eq(u64, st.dropped, 10), "the ring drops once the socket is full");
    cr_assert(eq(u64, st.queued, TRANSPORT_MQTT_QUEUE_LEN));
    cr_assert(eq(u64, st.sent + st.queued + st.dropped, (uint64_t)n), "every message accounted");
    transport_mqtt_close(&m, on_closed);
    spin(5000, &closed);
    cr_assert(eq(int, closed, 1));
    close(slow_fd);
    close(lfd);
    cr_assert(eq(int, uv_run(&loop, UV_RUN_DEFAULT), 0));
    cr_assert(eq(int, uv_loop_close(&loop), 0));
}

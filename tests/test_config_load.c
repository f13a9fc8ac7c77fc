/* test_config_load.c: defaults, valid files, the shipped config, files on disk.
 *
 * Covers what a valid configuration turns into: the built-in defaults, a file
 * that sets every key, the shipped config/kwsd.yaml (which must equal the
 * defaults), empty and comment-only files, reading from disk and its errors,
 * the label check the daemon runs after loading a model, the YAML dump
 * round trip, and docs/CONFIG.md agreeing with the code's key table.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kws/config.h"
#include "kws/err.h"

static char tmpdir[64];

static void tmp_setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws_cfg_XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(tmpdir), NULL)));
}

static void tmp_teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect(eq(int, system(cmd), 0));
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(not(eq(ptr, f, NULL)), "%s", path);
    fputs(text, f);
    cr_assert(eq(int, fclose(f), 0));
}

/* Two configs equal except for where they came from. */
static int same_values(const struct kws_config *a, const struct kws_config *b) {
    struct kws_config x = *a, y = *b;
    memset(x.source, 0, sizeof x.source);
    memset(y.source, 0, sizeof y.source);
    for (int i = 0; i < x.detection.n_keywords; i++)
        x.detection.keywords[i].line = x.detection.keywords[i].col = 0;
    for (int i = 0; i < y.detection.n_keywords; i++)
        y.detection.keywords[i].line = y.detection.keywords[i].col = 0;
    return memcmp(&x, &y, sizeof x) == 0;
}

/* A label's threshold through the config's listener settings: the one
 * threshold rule (kws_listener_threshold). */
static float thr_for(const struct kws_config *c, const char *label, float model_thr) {
    struct kws_listener_settings s;
    config_listener_settings(c, &s);
    return kws_listener_threshold(&s, label, model_thr);
}

Test(config_load, defaults) {
    struct kws_config c;

    memset(&c, 0x5a, sizeof c);
    config_defaults(&c);
    cr_expect(eq(str, c.source, ""));
    cr_expect(eq(str, c.audio.device, "default"));
    cr_expect(eq(int, c.audio.rate, 16000));
    cr_expect(eq(int, c.audio.period_ms, 20));
    cr_expect(eq(str, c.model.path, "/usr/share/kwsd/commands.kwsm"));
    cr_expect(eq(flt, c.detection.threshold, KWS_THRESHOLD_MODEL));
    /* threshold: model takes the model's calibration, or the fallback without one */
    cr_expect(eq(flt, thr_for(&c, "stop", 0.55f), 0.55f));
    cr_expect(eq(flt, thr_for(&c, "stop", 0.0f), KWS_THRESHOLD_FALLBACK));
    cr_expect(eq(int, c.detection.smoothing_ms, 300));
    cr_expect(eq(int, c.detection.refractory_ms, 1000));
    cr_expect(eq(int, c.detection.n_keywords, 0));
    cr_expect(eq(int, c.transport.n_endpoints, 1));
    cr_expect(eq(str, c.transport.endpoints[0], "tcp://127.0.0.1:5556"));
    cr_expect(eq(dbl, c.transport.heartbeat_s, 5.0));
    cr_expect(eq(int, c.transport.queue, 1000));
    cr_expect(eq(int, (int)c.logging.level, (int)KWS_LOG_INFO));
    cr_expect(eq(str, c.mqtt.host, ""), "no MQTT by default");
    cr_expect(eq(int, c.mqtt.port, 1883));
    cr_expect(eq(str, c.mqtt.site_id, "default"));

    /* Every byte is defined: two default configs compare equal with memcmp. */
    struct kws_config c2;
    memset(&c2, 0x11, sizeof c2);
    config_defaults(&c2);
    cr_expect(eq(int, memcmp(&c, &c2, sizeof c), 0));
}

Test(config_load, empty_and_comment_only_give_defaults) {
    static const char *const texts[] = {
        "", "\n\n", "# nothing\n", "~\n", "---\n", "audio:\nmodel: ~\ndetection:\n  keywords:\n"};
    struct kws_config want, c;
    struct config_diags d;

    config_defaults(&want);
    for (size_t i = 0; i < KWS_ARRAY_SIZE(texts); i++) {
        memset(&c, 0, sizeof c);
        cr_assert(eq(int, config_parse_string(&c, "t.yaml", texts[i], &d), 0), "text %zu", i);
        cr_expect(eq(int, d.n, 0));
        cr_expect(eq(str, c.source, "t.yaml"));
        cr_expect(same_values(&c, &want), "text %zu", i);
    }
}

Test(config_load, full_file) {
    static const char yaml[] = "audio:\n"
                               "  device: \"plughw:CARD=Device,DEV=0\"\n"
                               "  rate: 48000\n"
                               "  period_ms: 10\n"
                               "model:\n"
                               "  path: /var/lib/kwsd/digits.kwsm\n"
                               "detection:\n"
                               "  threshold: 0.65\n"
                               "  smoothing_ms: 200\n"
                               "  refractory_ms: 0\n"
                               "  keywords:\n"
                               "    stop: 0.7\n"
                               "    'off': 1\n"
                               "    go: 0\n"
                               "transport:\n"
                               "  endpoints:\n"
                               "    - tcp://127.0.0.1:5556\n"
                               "    - ipc:///run/kwsd/events\n"
                               "    - inproc://kwsd\n"
                               "    - tcp://[::1]:*\n"
                               "  heartbeat_s: 0.5\n"
                               "  queue: 1000000\n"
                               "logging:\n"
                               "  level: debug\n"
                               "mqtt:\n"
                               "  host: broker.lan\n"
                               "  port: 8883\n"
                               "  tls: /etc/ssl/certs/lan-ca.pem\n"
                               "  username: kwsd\n"
                               "  password_file: /etc/kwsd/mqtt-password\n"
                               "  site_id: kitchen\n";
    struct kws_config c;
    struct config_diags d;

    config_defaults(&c);
    int rc = config_parse_string(&c, "full.yaml", yaml, &d);
    config_diags_print(&d, stderr);
    cr_assert(eq(int, rc, 0));
    cr_expect(eq(int, d.n, 0));
    cr_expect(eq(str, c.source, "full.yaml"));
    cr_expect(eq(str, c.audio.device, "plughw:CARD=Device,DEV=0"));
    cr_expect(eq(int, c.audio.rate, 48000));
    cr_expect(eq(int, c.audio.period_ms, 10));
    cr_expect(eq(str, c.model.path, "/var/lib/kwsd/digits.kwsm"));
    cr_expect(eq(flt, c.detection.threshold, 0.65f));
    cr_expect(eq(int, c.detection.smoothing_ms, 200));
    cr_expect(eq(int, c.detection.refractory_ms, 0));
    cr_assert(eq(int, c.detection.n_keywords, 3));
    cr_expect(eq(str, c.detection.keywords[0].label, "stop"));
    cr_expect(eq(flt, c.detection.keywords[0].threshold, 0.7f));
    cr_expect(eq(int, c.detection.keywords[0].line, 12));
    cr_expect(eq(int, c.detection.keywords[0].col, 5));
    cr_expect(eq(str, c.detection.keywords[1].label, "off"));
    cr_expect(eq(flt, c.detection.keywords[1].threshold, 1.0f));
    cr_expect(eq(int, c.detection.keywords[1].line, 13));
    cr_expect(eq(str, c.detection.keywords[2].label, "go"));
    cr_expect(eq(flt, c.detection.keywords[2].threshold, 0.0f));
    cr_assert(eq(int, c.transport.n_endpoints, 4));
    cr_expect(eq(str, c.transport.endpoints[0], "tcp://127.0.0.1:5556"));
    cr_expect(eq(str, c.transport.endpoints[1], "ipc:///run/kwsd/events"));
    cr_expect(eq(str, c.transport.endpoints[2], "inproc://kwsd"));
    cr_expect(eq(str, c.transport.endpoints[3], "tcp://[::1]:*"));
    cr_expect(eq(dbl, c.transport.heartbeat_s, 0.5));
    cr_expect(eq(int, c.transport.queue, 1000000));
    cr_expect(eq(int, (int)c.logging.level, (int)KWS_LOG_DEBUG));
    cr_expect(eq(str, c.mqtt.host, "broker.lan"));
    cr_expect(eq(int, c.mqtt.port, 8883));
    cr_expect(eq(str, c.mqtt.tls, "/etc/ssl/certs/lan-ca.pem"));
    cr_expect(eq(str, c.mqtt.username, "kwsd"));
    cr_expect(eq(str, c.mqtt.password_file, "/etc/kwsd/mqtt-password"));
    cr_expect(eq(str, c.mqtt.site_id, "kitchen"));

    cr_expect(eq(flt, thr_for(&c, "stop", 0.3f), 0.7f));
    cr_expect(eq(flt, thr_for(&c, "go", 0.3f), 0.0f));
    cr_expect(eq(flt, thr_for(&c, "yes", 0.3f), 0.65f), "a number beats the model's");
}

/* Keys left out keep their defaults; flow style works like block style. */
Test(config_load, partial_file_keeps_other_defaults) {
    struct kws_config c, want;
    struct config_diags d;

    config_defaults(&want);
    config_defaults(&c);
    cr_assert(eq(int, config_parse_string(&c, "t.yaml", "audio: {rate: 44100}\n", &d), 0));
    want.audio.rate = 44100;
    cr_expect(same_values(&c, &want));
}

/* A shorter string over a longer default leaves no stale bytes behind. */
Test(config_load, strings_compare_with_memcmp) {
    struct kws_config a, b;
    struct config_diags d;

    cr_assert(eq(int, config_parse_string(&a, "t.yaml", "audio: {device: hw}\n", &d), 0));
    config_defaults(&b);
    snprintf(b.source, sizeof b.source, "t.yaml");
    memset(b.audio.device, 0, sizeof b.audio.device);
    memcpy(b.audio.device, "hw", 3);
    cr_expect(eq(int, memcmp(&a, &b, sizeof a), 0));
}

Test(config_load, shipped_config_is_clean_and_equals_defaults) {
    struct kws_config c, want;
    struct config_diags d;

    memset(&c, 0, sizeof c);
    int rc = config_load(&c, KWSD_SOURCE_DIR "/config/kwsd.yaml", &d);
    config_diags_print(&d, stderr);
    cr_assert(eq(int, rc, 0));
    cr_expect(eq(int, d.n, 0));
    cr_expect(eq(str, c.source, KWSD_SOURCE_DIR "/config/kwsd.yaml"));
    config_defaults(&want);
    cr_expect(same_values(&c, &want), "config/kwsd.yaml must state the built-in defaults");
}

Test(config_load, from_disk, .init = tmp_setup, .fini = tmp_teardown) {
    char path[128];
    struct kws_config c, before;
    struct config_diags d;

    snprintf(path, sizeof path, "%s/kwsd.yaml", tmpdir);
    write_text(path, "detection:\n  threshold: 0.5\n");
    config_defaults(&c);
    cr_assert(eq(int, config_load(&c, path, &d), 0));
    cr_expect(eq(flt, c.detection.threshold, 0.5f));
    cr_expect(eq(str, c.source, path));

    /* An invalid file names itself and leaves the running config alone. */
    write_text(path, "detection:\n  threshold: 5\n");
    before = c;
    cr_assert(eq(int, config_load(&c, path, &d), KWS_ECONFIG));
    cr_assert(eq(int, d.n, 1));
    char want[256];
    snprintf(want, sizeof want, "%s:2:14: detection.threshold: 5 out of range [0, 1]", path);
    cr_expect(eq(str, d.msg[0], want));
    cr_expect(eq(int, memcmp(&c, &before, sizeof c), 0));
}

Test(config_load, unreadable_files, .init = tmp_setup, .fini = tmp_teardown, .timeout = 10) {
    char path[128], want[256];
    struct kws_config c, before;
    struct config_diags d;

    config_defaults(&c);
    before = c;
    snprintf(path, sizeof path, "%s/missing.yaml", tmpdir);
    cr_expect(eq(int, config_load(&c, path, &d), -ENOENT));
    cr_assert(eq(int, d.n, 1));
    snprintf(want, sizeof want, "%s: %s", path, strerror(ENOENT));
    cr_expect(eq(str, d.msg[0], want));

    cr_expect(eq(int, config_load(&c, tmpdir, &d), -EISDIR));
    cr_expect(eq(int, d.n, 1));
    snprintf(want, sizeof want, "%s: a directory, not a regular file", tmpdir);
    cr_expect(eq(str, d.msg[0], want));

    /* A FIFO with no writer is refused at once instead of blocking (the
     * test's timeout catches a hang); so is a device. */
    snprintf(path, sizeof path, "%s/fifo.yaml", tmpdir);
    cr_assert(eq(int, mkfifo(path, 0600), 0));
    cr_expect(eq(int, config_load(&c, path, &d), -EINVAL));
    cr_assert(eq(int, d.n, 1));
    snprintf(want, sizeof want, "%s: a FIFO, not a regular file", path);
    cr_expect(eq(str, d.msg[0], want));
    cr_expect(eq(int, config_load(&c, "/dev/zero", &d), -EINVAL));
    cr_assert(eq(int, d.n, 1));
    cr_expect(eq(str, d.msg[0], "/dev/zero: a character device, not a regular file"));

    /* Bytes libyaml's reader refuses report a position too. */
    snprintf(path, sizeof path, "%s/bad.yaml", tmpdir);
    write_text(path, "audio:\n  device: \xff\xfe\n");
    cr_expect(eq(int, config_load(&c, path, &d), KWS_ECONFIG));
    cr_assert(eq(int, d.n, 1));
    snprintf(want, sizeof want, "%s:2:11: syntax error: ", path);
    cr_expect(eq(int, strncmp(d.msg[0], want, strlen(want)), 0), "%s", d.msg[0]);
    cr_expect(eq(int, memcmp(&c, &before, sizeof c), 0));

    /* No file at all means the built-in defaults. */
    memset(&c, 0, sizeof c);
    cr_expect(eq(int, config_load(&c, NULL, &d), 0));
    cr_expect(eq(int, d.n, 0));
    cr_expect(eq(int, memcmp(&c, &before, sizeof c), 0));
}

Test(config_load, labels_checked_against_model) {
    static const char yaml[] = "detection:\n"
                               "  keywords:\n"
                               "    stop: 0.7\n"
                               "    foo: 0.5\n"
                               "    yes: 0.9\n"
                               "    bar: 0.1\n";
    static const char *const labels[] = {"_silence_", "_unknown_", "yes", "no", "stop", "go"};
    struct kws_config c;
    struct config_diags d;

    config_defaults(&c);
    cr_assert(eq(int, config_parse_string(&c, "kwsd.yaml", yaml, &d), 0));
    cr_expect(eq(int, config_check_labels(&c, labels, 6, &d), KWS_ECONFIG));
    cr_assert(eq(int, d.n, 2));
    cr_expect(eq(str, d.msg[0], "kwsd.yaml:4:5: detection.keywords.foo: no such label in model"));
    cr_expect(eq(str, d.msg[1], "kwsd.yaml:6:5: detection.keywords.bar: no such label in model"));

    d.n = 0;
    static const char *const all[] = {"stop", "foo", "yes", "bar"};
    cr_expect(eq(int, config_check_labels(&c, all, 4, &d), 0));
    cr_expect(eq(int, d.n, 0));
}

Test(config_load, dump_reads_back_the_same) {
    static const char yaml[] = "audio: {device: \"we\\\"ird \\\\ name\", rate: 22050}\n"
                               "model: {paths: [a.kwsm, \"b c.kwsm\"], dir: /var/lib/m}\n"
                               "detection: {threshold: 0.123456789, keywords: {\"a b\": 0.3}}\n"
                               "transport:\n  endpoints: [ipc:///tmp/x, tcp://127.0.0.1:7]\n"
                               "  heartbeat_s: 2.7182818284590451\n"
                               "logging: {level: warning}\n"
                               "mqtt: {host: \"h\", port: 1884, site_id: \"a \\\"b\\\"\"}\n";
    struct kws_config a, b;
    struct config_diags d;
    char *out = NULL;
    size_t outlen = 0;

    cr_assert(eq(int, config_parse_string(&a, "t.yaml", yaml, &d), 0));
    FILE *f = open_memstream(&out, &outlen);
    config_dump(&a, f);
    fclose(f);
    int rc = config_parse_string(&b, "dump.yaml", out, &d);
    config_diags_print(&d, stderr);
    cr_assert(eq(int, rc, 0), "%s", out);
    cr_expect(same_values(&a, &b), "%s", out);
    cr_expect(eq(str, b.audio.device, "we\"ird \\ name"));
    free(out);

    /* And the defaults' dump is a valid file equal to the defaults. */
    config_defaults(&a);
    f = open_memstream(&out, &outlen);
    config_dump(&a, f);
    fclose(f);
    cr_assert(eq(int, config_parse_string(&b, "dump.yaml", out, &d), 0), "%s", out);
    cr_expect(same_values(&a, &b));
    free(out);
}

/* docs/CONFIG.md carries the key table exactly as the code prints it. */
/* The model set: model.path alone, or model.paths instead of it, then
 * model.dir's *.kwsm files in name order; a file named twice loads once;
 * other files, directories and hidden files are left out; more than
 * KWS_CONFIG_MAX_MODELS or a missing directory is an error naming it. */
Test(config_load, model_files, .init = tmp_setup, .fini = tmp_teardown) {
    char files[KWS_CONFIG_MAX_MODELS][KWS_CONFIG_PATH_LEN], yaml[1024], p[256];
    struct kws_config c;
    struct config_diags d;

    config_defaults(&c);
    cr_assert(eq(int, config_model_files(&c, files, &d), 1));
    cr_expect(eq(str, files[0], "/usr/share/kwsd/commands.kwsm"));

    snprintf(p, sizeof p, "%s/models", tmpdir);
    cr_assert(eq(int, mkdir(p, 0700), 0));
    static const char *const names[] = {"b.kwsm", "a.kwsm", "notes.txt", ".hidden.kwsm"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/models/%s", tmpdir, names[i]);
        write_text(p, "x");
    }
    snprintf(p, sizeof p, "%s/models/dir.kwsm", tmpdir);
    cr_assert(eq(int, mkdir(p, 0700), 0));
    snprintf(yaml, sizeof yaml, "model:\n  paths: [/x.kwsm, %s/models/b.kwsm]\n  dir: %s/models\n",
             tmpdir, tmpdir);
    cr_assert(eq(int, config_parse_string(&c, "t.yaml", yaml, &d), 0), "%s", d.msg[0]);
    cr_assert(eq(int, config_model_files(&c, files, &d), 3));
    cr_expect(eq(str, files[0], "/x.kwsm"));
    snprintf(p, sizeof p, "%s/models/b.kwsm", tmpdir);
    cr_expect(eq(str, files[1], p));
    snprintf(p, sizeof p, "%s/models/a.kwsm", tmpdir);
    cr_expect(eq(str, files[2], p), "b.kwsm is listed already: only a.kwsm is added");

    for (int i = 0; i < KWS_CONFIG_MAX_MODELS; i++) {
        snprintf(p, sizeof p, "%s/models/m%d.kwsm", tmpdir, i);
        write_text(p, "x");
    }
    memset(&d, 0, sizeof d);
    cr_expect(eq(int, config_model_files(&c, files, &d), KWS_ECONFIG));
    cr_expect(not(eq(ptr, strstr(d.msg[0], "model.dir: more than 8 models in all"), NULL)), "%s",
              d.msg[0]);

    snprintf(yaml, sizeof yaml, "model:\n  dir: %s/none\n", tmpdir);
    cr_assert(eq(int, config_parse_string(&c, "t.yaml", yaml, &d), 0));
    cr_expect(eq(int, config_model_files(&c, files, &d), -ENOENT));
    snprintf(p, sizeof p, "%s/none: model.dir: ", tmpdir);
    cr_expect(not(eq(ptr, strstr(d.msg[0], p), NULL)), "%s", d.msg[0]);
}

Test(config_load, docs_table_matches_code) {
    char *want = NULL, *doc = NULL;
    size_t wantlen = 0, doclen = 0;

    FILE *f = open_memstream(&want, &wantlen);
    config_keys_markdown(f);
    fclose(f);

    f = fopen(KWSD_SOURCE_DIR "/docs/CONFIG.md", "r");
    cr_assert(not(eq(ptr, f, NULL)), "docs/CONFIG.md missing");
    FILE *m = open_memstream(&doc, &doclen);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, m);
    fclose(f);
    fclose(m);
    cr_expect(not(eq(ptr, strstr(doc, want), NULL)),
              "docs/CONFIG.md's key table differs from the code's; it should read:\n%s", want);
    free(want);
    free(doc);
}

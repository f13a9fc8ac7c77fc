/* test_config_errors.c: every class of config error, with its exact position.
 *
 * Each case is a small YAML text and the one diagnostic it must produce,
 * "t.yaml:line:col: key: message", checked byte for byte; every case also
 * checks that the config passed in is left untouched. A last group checks
 * that one file with several problems reports all of them, in order.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "kws/config.h"
#include "kws/err.h"

/* Inline arrays, not pointers: Criterion copies parameters into each test's
 * process. */
struct err_case {
    char yaml[512];
    char want[256];
};

ParameterizedTestParameters(config_errors, one_error) {
    static struct err_case cases[] = {
        /* unknown keys, at the key */
        {"audio:\n  devcie: hw:0\n", "t.yaml:2:3: audio.devcie: unknown key"},
        {"audoi:\n  rate: 16000\n", "t.yaml:1:1: audoi: unknown key"},
        {"detection:\n  keywords: {}\n  treshold: 0.5\n",
         "t.yaml:3:3: detection.treshold: unknown key"},
        {"audio:\n  rate:\n    hz: 16000\n",
         "t.yaml:3:5: audio.rate: expected an integer, got a mapping"},
        /* wrong types, at the value */
        {"detection:\n  threshold: high\n",
         "t.yaml:2:14: detection.threshold: expected a number or model, got \"high\""},
        {"audio:\n  rate: 16k\n", "t.yaml:2:9: audio.rate: expected an integer, got \"16k\""},
        {"audio:\n  rate: 16000.5\n",
         "t.yaml:2:9: audio.rate: expected an integer, got \"16000.5\""},
        {"audio:\n  period_ms: 0x10\n",
         "t.yaml:2:14: audio.period_ms: expected an integer, got \"0x10\""},
        {"audio:\n  rate:\n", "t.yaml:2:8: audio.rate: expected an integer, got nothing"},
        {"audio:\n  device: [a, b]\n",
         "t.yaml:2:11: audio.device: expected a string, got a sequence"},
        {"transport:\n  heartbeat_s: nan\n",
         "t.yaml:2:16: transport.heartbeat_s: expected a number, got \"nan\""},
        {"audio: loud\n", "t.yaml:1:8: audio: expected a mapping of keys, got \"loud\""},
        {"- audio\n- model\n",
         "t.yaml:1:1: (top level): expected a mapping of sections, got a sequence"},
        /* out of range */
        {"audio:\n  rate: 441000\n", "t.yaml:2:9: audio.rate: 441000 out of range [8000, 192000]"},
        {"audio:\n  rate: 1e9\n", "t.yaml:2:9: audio.rate: 1e9 out of range [8000, 192000]"},
        {"audio:\n  period_ms: -5\n", "t.yaml:2:14: audio.period_ms: -5 out of range [5, 200]"},
        {"audio:\n  rate: 99999999999999999999\n",
         "t.yaml:2:9: audio.rate: 99999999999999999999 out of range [8000, 192000]"},
        {"detection:\n  threshold: 1.5\n",
         "t.yaml:2:14: detection.threshold: 1.5 out of range [0, 1]"},
        {"detection:\n  smoothing_ms: 5\n",
         "t.yaml:2:17: detection.smoothing_ms: 5 out of range [10, 3000]"},
        {"detection:\n  refractory_ms: 60001\n",
         "t.yaml:2:18: detection.refractory_ms: 60001 out of range [0, 60000]"},
        {"transport:\n  heartbeat_s: 0.1\n",
         "t.yaml:2:16: transport.heartbeat_s: 0.1 out of range [0.5, 3600]"},
        {"transport:\n  queue: 0\n", "t.yaml:2:10: transport.queue: 0 out of range [1, 1000000]"},
        {"audio:\n  device: \"\"\n", "t.yaml:2:11: audio.device: must not be empty"},
        {"mqtt:\n  port: 0\n", "t.yaml:2:9: mqtt.port: 0 out of range [1, 65535]"},
        {"mqtt:\n  site_id: \"\"\n", "t.yaml:2:12: mqtt.site_id: must not be empty"},
        {"mqtt:\n  host:\n", "t.yaml:2:8: mqtt.host: expected a string, got nothing"},
        {"mqtt:\n  hots: x\n", "t.yaml:2:3: mqtt.hots: unknown key"},
        {"model:\n  path: \"a\\tb\"\n",
         "t.yaml:2:9: model.path: \"a?b\": control character 0x09 not allowed"},
        /* bad enum */
        {"logging:\n  level: verbose\n",
         "t.yaml:2:10: logging.level: bad value \"verbose\": expected one of error, warning, "
         "notice, info, debug"},
        /* bad endpoints */
        {"transport:\n  endpoints:\n    - udp://1.2.3.4:5\n",
         "t.yaml:3:7: transport.endpoints[0]: \"udp://1.2.3.4:5\": unsupported transport "
         "(expected tcp://, ipc:// or inproc://)"},
        {"transport:\n  endpoints: [tcp://127.0.0.1:99999]\n",
         "t.yaml:2:15: transport.endpoints[0]: \"tcp://127.0.0.1:99999\": bad port \"99999\" "
         "(expected 1..65535 or *)"},
        {"transport:\n  endpoints:\n    - tcp://127.0.0.1:5556\n    - tcp://localhost\n",
         "t.yaml:4:7: transport.endpoints[1]: \"tcp://localhost\": expected tcp://host:port"},
        {"transport:\n  endpoints: [\"ipc://\"]\n",
         "t.yaml:2:15: transport.endpoints[0]: \"ipc://\": empty path"},
        {"transport:\n  endpoints: []\n",
         "t.yaml:2:14: transport.endpoints: 0 endpoints, expected 1 to 8"},
        {"transport:\n  endpoints: [a, b, c, d, e, f, g, h, i]\n",
         "t.yaml:2:14: transport.endpoints: 9 endpoints, expected 1 to 8"},
        {"transport:\n  endpoints: tcp://127.0.0.1:1\n",
         "t.yaml:2:14: transport.endpoints: expected a sequence of endpoints, got "
         "\"tcp://127.0.0.1:1\""},
        {"transport:\n  endpoints: [inproc://a, inproc://a]\n",
         "t.yaml:2:27: transport.endpoints[1]: duplicate endpoint \"inproc://a\" (also "
         "transport.endpoints[0])"},
        /* several models */
        {"model:\n  paths: /a.kwsm\n",
         "t.yaml:2:10: model.paths: expected a sequence of model files, got \"/a.kwsm\""},
        {"model:\n  paths: [a, b, c, d, e, f, g, h, i]\n",
         "t.yaml:2:10: model.paths: 9 model files, expected 0 to 8"},
        {"model:\n  paths: [\"\"]\n", "t.yaml:2:11: model.paths[0]: must not be empty"},
        {"model:\n  paths: [a.kwsm, a.kwsm]\n",
         "t.yaml:2:19: model.paths[1]: duplicate model file \"a.kwsm\" (also model.paths[0])"},
        {"model:\n  path: a.kwsm\n  paths: [b.kwsm]\n",
         "t.yaml:2:9: model.path: give model.path (one model) or model.paths (several), not "
         "both"},
        {"model:\n  dir: [a]\n", "t.yaml:2:8: model.dir: expected a string, got a sequence"},
        /* keyword overrides */
        {"detection:\n  keywords:\n    stop: 2\n",
         "t.yaml:3:11: detection.keywords.stop: 2 out of range [0, 1]"},
        {"detection:\n  keywords:\n    stop: loud\n",
         "t.yaml:3:11: detection.keywords.stop: expected a number, got \"loud\""},
        {"detection:\n  keywords: [stop]\n",
         "t.yaml:2:13: detection.keywords: expected a mapping of label: threshold, got a "
         "sequence"},
        {"detection:\n  keywords:\n    a_label_that_is_far_too_long_for_kwsd: 0.5\n",
         "t.yaml:3:5: detection.keywords.a_label_that_is_far_too_long_for_kwsd: label must be "
         "1 to 31 bytes"},
        /* duplicate keys, at the second one */
        {"audio:\n  rate: 16000\n  rate: 8000\n",
         "t.yaml:3:3: audio.rate: duplicate key (first at line 2:3)"},
        {"audio: {}\nmodel: {}\naudio: {}\n",
         "t.yaml:3:1: audio: duplicate key (first at line 1:1)"},
        {"detection:\n  keywords:\n    stop: 0.5\n    stop: 0.6\n",
         "t.yaml:4:5: detection.keywords.stop: duplicate key (first at line 3:5)"},
        /* syntax errors: the first one only, with libyaml's text */
        {"audio:\n  rate: 16000\n bad\n",
         "t.yaml:3:2: syntax error: did not find expected key (while parsing a block mapping at "
         "line 1 column 1)"},
        {"audio:\n\trate: 5\n",
         "t.yaml:2:1: syntax error: found character that cannot start any token (while scanning "
         "for the next token at line 2 column 1)"},
        {"audio: [1, 2\nrate: x: y\nzzz: [\n",
         "t.yaml:2:5: syntax error: did not find expected ',' or ']' (while parsing a flow "
         "sequence at line 1 column 8)"},
        {"a: b\n---\nc: d\n", "t.yaml:1:1: a: unknown key"},
    };
    return cr_make_param_array(struct err_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct err_case *c, config_errors, one_error) {
    struct kws_config cfg, before;
    struct config_diags d;

    memset(&cfg, 0xa5, sizeof cfg); /* "untouched" must hold for any content */
    memcpy(&before, &cfg, sizeof cfg);
    int rc = config_parse_string(&cfg, "t.yaml", c->yaml, &d);
    cr_assert(eq(int, rc, KWS_ECONFIG), "input:\n%s", c->yaml);
    cr_assert(ge(int, d.n, 1));
    cr_expect(eq(str, d.msg[0], c->want), "input:\n%s", c->yaml);
    cr_expect(eq(int, memcmp(&cfg, &before, sizeof cfg), 0), "config changed on failure");
}

/* The one case above with a second document gives two lines: both checked. */
Test(config_errors, second_document) {
    struct kws_config cfg;
    struct config_diags d;

    config_defaults(&cfg);
    cr_assert(eq(int, config_parse_string(&cfg, "t.yaml", "audio: {}\n---\naudio: {}\n", &d),
                 KWS_ECONFIG));
    cr_assert(eq(int, d.n, 1));
    cr_expect(eq(str, d.msg[0], "t.yaml:3:1: (top level): only one YAML document is allowed"));
}

Test(config_errors, several_in_one_file) {
    static const char yaml[] = "# several mistakes\n"
                               "audio:\n"
                               "  devcie: hw:0\n"
                               "  rate: 441000\n"
                               "  period_ms: 20\n"
                               "detection:\n"
                               "  threshold: high\n"
                               "  keywords:\n"
                               "    stop: 0.7\n"
                               "    go: 3\n"
                               "transport:\n"
                               "  endpoints:\n"
                               "    - tcp://127.0.0.1:5556\n"
                               "    - udp://x\n"
                               "  queue: 10\n"
                               "  queue: 20\n"
                               "logging:\n"
                               "  level: loud\n"
                               "colour: blue\n";
    static const char *const want[] = {
        "kwsd.yaml:3:3: audio.devcie: unknown key",
        "kwsd.yaml:4:9: audio.rate: 441000 out of range [8000, 192000]",
        "kwsd.yaml:7:14: detection.threshold: expected a number or model, got \"high\"",
        "kwsd.yaml:10:9: detection.keywords.go: 3 out of range [0, 1]",
        "kwsd.yaml:14:7: transport.endpoints[1]: \"udp://x\": unsupported transport (expected "
        "tcp://, ipc:// or inproc://)",
        "kwsd.yaml:16:3: transport.queue: duplicate key (first at line 15:3)",
        "kwsd.yaml:18:10: logging.level: bad value \"loud\": expected one of error, warning, "
        "notice, info, debug",
        "kwsd.yaml:19:1: colour: unknown key",
    };
    struct kws_config cfg, before;
    struct config_diags d;

    config_defaults(&cfg);
    before = cfg;
    cr_assert(eq(int, config_parse_string(&cfg, "kwsd.yaml", yaml, &d), KWS_ECONFIG));
    cr_assert(eq(int, d.n, (int)KWS_ARRAY_SIZE(want)));
    for (int i = 0; i < d.n; i++)
        cr_expect(eq(str, d.msg[i], (char *)want[i]), "line %d", i);
    cr_expect(eq(int, d.truncated, 0));
    cr_expect(eq(int, memcmp(&cfg, &before, sizeof cfg), 0));
}

/* A syntax error stops everything: the earlier bad keys are not reported. */
Test(config_errors, syntax_error_stops_before_keys) {
    struct kws_config cfg;
    struct config_diags d;

    config_defaults(&cfg);
    cr_assert(
        eq(int,
           config_parse_string(&cfg, "t.yaml", "audio:\n  rate: 1\n  colour: red\nmodel: [\n", &d),
           KWS_ECONFIG));
    cr_assert(eq(int, d.n, 1));
    cr_expect(eq(int, strncmp(d.msg[0], "t.yaml:5:1: syntax error: ", 26), 0), "%s", d.msg[0]);
}

/* More than KWS_CONFIG_DIAG_MAX problems: the list fills, the rest are counted. */
Test(config_errors, many_errors_truncate) {
    char yaml[4096];
    size_t o = 0;
    struct kws_config cfg;
    struct config_diags d;

    o += (size_t)snprintf(yaml + o, sizeof yaml - o, "audio:\n");
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "  k%d: 1\n", i);
    config_defaults(&cfg);
    cr_assert(eq(int, config_parse_string(&cfg, "t.yaml", yaml, &d), KWS_ECONFIG));
    cr_expect(eq(int, d.n, KWS_CONFIG_DIAG_MAX));
    cr_expect(eq(int, d.truncated, 40 - KWS_CONFIG_DIAG_MAX));
    cr_expect(eq(str, d.msg[0], "t.yaml:2:3: audio.k0: unknown key"));

    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    config_diags_print(&d, f);
    fclose(f);
    cr_expect(not(eq(ptr, strstr(out, "\n(8 more errors)\n"), NULL)), "%s", out);
    free(out);
}

/* 100,000 keys in one mapping. Finding duplicates used to compare each key
 * with every earlier one: over a minute for this file, which the timeout
 * turns into a failure. Every key is unknown, one is given twice (near the
 * start, so its message is among the first ones kept), and each problem is
 * reported with its exact position, as for a small file. */
Test(config_errors, hundred_thousand_keys, .timeout = 10) {
    enum { N = 100000 };
    size_t cap = 32 + (size_t)N * 16, o = 0;
    char *yaml = malloc(cap);
    struct kws_config cfg;
    struct config_diags d;

    cr_assert(not(eq(ptr, yaml, NULL)));
    o += (size_t)snprintf(yaml + o, cap - o, "audio:\n  k0: 1\n  k1: 1\n  k0: 2\n");
    for (int i = 2; i < N; i++)
        o += (size_t)snprintf(yaml + o, cap - o, "  k%d: 1\n", i);
    o += (size_t)snprintf(yaml + o, cap - o, "  k%d: 2\n", N - 1);
    config_defaults(&cfg);
    cr_assert(eq(int, config_parse_string(&cfg, "t.yaml", yaml, &d), KWS_ECONFIG));
    free(yaml);
    cr_assert(eq(int, d.n, KWS_CONFIG_DIAG_MAX));
    cr_expect(eq(str, d.msg[0], "t.yaml:2:3: audio.k0: unknown key"));
    cr_expect(eq(str, d.msg[1], "t.yaml:3:3: audio.k1: unknown key"));
    cr_expect(eq(str, d.msg[2], "t.yaml:4:3: audio.k0: duplicate key (first at line 2:3)"));
    cr_expect(eq(str, d.msg[3], "t.yaml:5:3: audio.k2: unknown key"));
    /* N unknown keys and two duplicates */
    cr_expect(eq(int, d.truncated, N + 2 - KWS_CONFIG_DIAG_MAX));
}

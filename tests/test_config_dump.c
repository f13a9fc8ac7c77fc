/* test_config_dump.c: config_dump's output reads back as the same configuration.
 *
 * kwsd --check-config prints a configuration with config_dump; a string
 * holding a character YAML reads as a line break (NEL, U+2028, U+2029) or
 * refuses unescaped (C1 controls, U+FFFE) must come back unchanged. The
 * first such case was found by tests/fuzz/fuzz_config.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/config.h"

/* Text, not pointers: each test runs in a new process (ASLR moves strings). */
struct yaml_text {
    char s[96];
};

ParameterizedTestParameters(config_dump, reads_back_the_same) {
    static struct yaml_text yaml[] = {
        {"audio:\n  device: \"plug\\Nin\"\n"},    /* NEL */
        {"audio:\n  device: \"a\\x81b\\x9f\"\n"}, /* C1 controls */
        {"audio:\n  device: \"a\\Lb\\Pc\"\n"},    /* line and paragraph separators */
        {"model:\n  path: \"/m\\uFFFE.kwsm\"\n"}, /* a noncharacter */
        {"detection:\n  keywords: {\"y\\Nes\": 0.5}\n"},
        {"transport:\n  endpoints: [\"ipc:///tmp/\\u2028x\", \"tcp://127.0.0.1:1\"]\n"},
        {"audio:\n  device: \"caf\\u00e9 \\\\ \\\" \\u4e2d\"\n"}, /* kept as they are */
    };
    return cr_make_param_array(struct yaml_text, yaml, sizeof yaml / sizeof yaml[0]);
}

ParameterizedTest(struct yaml_text *text, config_dump, reads_back_the_same) {
    static struct kws_config a, b;
    static struct config_diags d;
    char *out = NULL;
    size_t len = 0;

    cr_assert(eq(int, config_parse_string(&a, "in.yaml", text->s, &d), 0), "%s", d.msg[0]);
    FILE *f = open_memstream(&out, &len);
    config_dump(&a, f);
    fclose(f);
    cr_assert(eq(int, config_parse_string(&b, "dump.yaml", out, &d), 0), "%s\n%s", out, d.msg[0]);
    cr_expect(eq(str, a.audio.device, b.audio.device), "%s", out);
    cr_expect(eq(str, a.model.path, b.model.path), "%s", out);
    cr_expect(eq(int, a.detection.n_keywords, b.detection.n_keywords));
    for (int i = 0; i < a.detection.n_keywords; i++)
        cr_expect(eq(str, a.detection.keywords[i].label, b.detection.keywords[i].label), "%s", out);
    cr_expect(eq(int, a.transport.n_endpoints, b.transport.n_endpoints));
    for (int i = 0; i < a.transport.n_endpoints; i++)
        cr_expect(eq(str, a.transport.endpoints[i], b.transport.endpoints[i]), "%s", out);
    free(out);
}

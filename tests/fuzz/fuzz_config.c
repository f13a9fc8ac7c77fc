/* fuzz_config.c: fuzz target for the configuration loader (YAML text).
 *
 * Each input is a kwsd.yaml as text; it goes through config_parse_string,
 * the same parser, key table and range checks as config_load, with the
 * diagnostics printed into a memory buffer so their formatting runs too.
 * A valid result is dumped back (config_dump) and parsed again: the dump
 * of a valid configuration must itself be valid and give the same struct.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kws/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct kws_config cfg, again;
    static struct config_diags d;
    char *yaml = malloc(size + 1);
    if (!yaml)
        return 0;
    memcpy(yaml, data, size);
    yaml[size] = '\0';

    int rc = config_parse_string(&cfg, "fuzz.yaml", yaml, &d);
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (f) {
        config_diags_print(&d, f);
        if (rc == 0)
            config_dump(&cfg, f);
        fclose(f);
    }
    if (rc == 0 && out) {
        /* the dump follows the diagnostics, which are empty on success */
        FUZZ_CHECK(config_parse_string(&again, "dump.yaml", out, &d) == 0);
        FUZZ_CHECK(memcmp(&cfg.audio, &again.audio, sizeof cfg.audio) == 0);
        FUZZ_CHECK(memcmp(&cfg.model, &again.model, sizeof cfg.model) == 0);
        FUZZ_CHECK(cfg.detection.threshold == again.detection.threshold);
        FUZZ_CHECK(cfg.detection.smoothing_ms == again.detection.smoothing_ms);
        FUZZ_CHECK(cfg.detection.refractory_ms == again.detection.refractory_ms);
        FUZZ_CHECK(cfg.detection.n_keywords == again.detection.n_keywords);
        for (int i = 0; i < cfg.detection.n_keywords; i++) {
            const struct config_keyword *a = &cfg.detection.keywords[i];
            const struct config_keyword *b = &again.detection.keywords[i];
            FUZZ_CHECK(strcmp(a->label, b->label) == 0 && a->threshold == b->threshold);
        }
        FUZZ_CHECK(cfg.logging.level == again.logging.level);
        FUZZ_CHECK(memcmp(&cfg.transport, &again.transport, sizeof cfg.transport) == 0);
    }
    free(out);
    free(yaml);
    return 0;
}

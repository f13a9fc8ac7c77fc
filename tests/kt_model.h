/* kt_model.h: small models written by the tests that run kwsd, for the
 * model checks and reloads they exercise rather than for what they hear.
 * Include after <criterion/criterion.h> and <criterion/new/assert.h>; the
 * test links kws_core and kws_audio.
 *
 *     struct kws_frontend_cfg fe;
 *     audio_fe_cfg_default(&fe);
 *     fe.n_mels = 20;
 *     kt_save_tiny_model(path, &fe, "yes", 0);   // "_silence_" for ever
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWSD_TESTS_KT_MODEL_H
#define KWSD_TESTS_KT_MODEL_H

#include <stdio.h>
#include <string.h>

#include "kws/frontend.h"
#include "kws/snn.h"

/* Saves to path a model over the front end fe: one layer of 8 neurons and
 * the classes "_silence_" and word, whose readout bias (5) makes class
 * `biased` win whatever the input. */
static inline void kt_save_tiny_model(const char *path, const struct kws_frontend_cfg *fe,
                                      const char *word, int biased) {
    struct snn_cfg cfg;
    struct snn_model m = {0};
    memset(&cfg, 0, sizeof cfg);
    cfg.fe = *fe;
    cfg.n_in = audio_fe_n_out(&cfg.fe);
    cfg.n_layers = 1;
    cfg.layer[0] = (struct snn_layer_cfg){.n = 8, .beta = 0.5f, .gain = 1.0f, .thresh = 1.0f};
    cfg.n_classes = 2;
    cfg.out_beta = 0.9f;
    cfg.out_gain = 1.0f;
    strcpy(cfg.labels[0], "_silence_");
    snprintf(cfg.labels[1], sizeof cfg.labels[1], "%s", word);
    cr_assert(eq(int, snn_model_init(&m, &cfg), 0));
    m.p.b_out[biased] = 5.0f;
    cr_assert(eq(int, snn_model_save(&m, path), 0));
    snn_model_free(&m);
}

#endif /* KWSD_TESTS_KT_MODEL_H */

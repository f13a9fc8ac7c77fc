/* fuzz.h: what every fuzz target under tests/fuzz/ shares.
 *
 * A target defines LLVMFuzzerTestOneInput (and may define
 * LLVMFuzzerInitialize). Built with -DKWSD_FUZZ=ON and clang it links
 * libFuzzer's main; otherwise replay.c's main runs it over files and
 * folders (the seed corpora and regress/), which is how ctest uses it.
 * FUZZ_CHECK states a property the input must not break: a failure
 * aborts, which both libFuzzer and ctest report as a finding.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TESTS_FUZZ_H
#define KWS_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(x)                                                                              \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #x);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif /* KWS_TESTS_FUZZ_H */

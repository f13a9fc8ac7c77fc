/* test_audio_file_hostile.c: a sound file's header cannot size kwsd's memory.
 *
 * audio_file_read (kwsd-eval --wav, the trainer's data sets) used to
 * allocate the frame count a file's header announces before reading a
 * sample: tests/fuzz/fuzz_audio.c found a 50-byte FLAC file that announces
 * 754 M frames, and a 3 GB malloc. The buffer now grows with the samples
 * that arrive. Here the process may map 1 GiB at most, so the old
 * allocation fails ("out of memory") while the file's real problem, a
 * stream with no decodable samples, is what must be reported.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kws/audio_file.h"

#define REGRESS KWSD_SOURCE_DIR "/tests/fuzz/regress/audio/flac-claims-754M-frames.raw"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

Test(audio_file_hostile, a_header_announcing_754m_frames_allocates_nothing_like_it) {
#ifdef ASAN
    cr_skip_test("AddressSanitizer reserves terabytes of address space; RLIMIT_AS cannot apply");
#else
    char path[600], msg[512] = "";
    float *x = NULL;
    size_t n = 0;
    struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};

    cr_assert(eq(int, setrlimit(RLIMIT_AS, &rl), 0));
    /* The fuzz input is one settings byte, then the file. */
    FILE *in = fopen(REGRESS, "rb");
    cr_assert(not(eq(ptr, in, NULL)));
    static unsigned char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, in);
    fclose(in);
    snprintf(path, sizeof path, "/tmp/kwsd-hostile-%d.flac", (int)getpid());
    FILE *out = fopen(path, "wb");
    cr_assert(not(eq(ptr, out, NULL)));
    fwrite(buf + 1, 1, len - 1, out);
    fclose(out);

    int rc = audio_file_read(path, 16000, &x, &n, NULL, msg, sizeof msg);
    remove(path);
    cr_log_info("rc %d: %s", rc, msg);
    cr_expect(lt(int, rc, 0), "refused");
    cr_expect(not(eq(int, rc, -ENOMEM)), "%s", msg);
    cr_expect(eq(ptr, strstr(msg, "out of memory"), NULL), "%s", msg);
    cr_expect(eq(ptr, x, NULL));
#endif
}

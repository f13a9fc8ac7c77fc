/* test_core_err.c: the error table and the logging helper.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "kws/err.h"
#include "kws/log.h"

Test(core_err, project_codes_have_messages_and_names) {
    for (int e = KWS__EBASE + 1; e < KWS__ELAST; e++) {
        cr_assert(ne(str, (char *)kws_strerror(e), "unknown error"), "code %d", e);
        cr_assert(eq(int, strncmp(kws_err_name(e), "KWS_E", 5), 0), "code %d", e);
    }
    cr_assert(eq(str, (char *)kws_strerror(KWS_EBADMAGIC), "bad magic number"));
    cr_assert(eq(str, (char *)kws_err_name(KWS_ECONFIG), "KWS_ECONFIG"));
}

Test(core_err, errno_values_fall_through) {
    cr_assert(eq(str, (char *)kws_strerror(-ENOMEM), strerror(ENOMEM)));
    cr_assert(eq(str, (char *)kws_err_name(-EPIPE), "EPIPE"));
    cr_assert(eq(str, (char *)kws_strerror(0), "success"));
    cr_assert(lt(int, KWS_EBADMAGIC, -4000 + 2));
}

Test(core_err, assert_aborts, .signal = SIGABRT) {
    int x = 1;
    KWS_ASSERT(x == 2);
}

struct captured {
    int n;
    enum kws_log_level level;
    char msg[128];
};

static void capture(void *ctx, enum kws_log_level level, const char *file, int line,
                    const char *msg) {
    struct captured *c = ctx;
    (void)file;
    (void)line;
    c->n++;
    c->level = level;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static int evaluated;
static int touch(void) {
    return ++evaluated;
}

Test(core_log, level_filter_skips_formatting) {
    struct captured c = {0};
    kws_log_set(capture, &c, KWS_LOG_INFO);
    KWS_LOG(KWS_LOG_DEBUG, "hidden %d", touch());
    cr_assert(eq(int, c.n, 0));
    cr_assert(eq(int, evaluated, 0), "arguments of a filtered line are not evaluated");
    KWS_LOG(KWS_LOG_WARNING, "xrun %d on %s", 3, "testmic");
    cr_assert(eq(int, c.n, 1));
    cr_assert(eq(int, c.level, KWS_LOG_WARNING));
    cr_assert(eq(str, c.msg, "xrun 3 on testmic"));
    kws_log_set(NULL, NULL, KWS_LOG_DEBUG);
    KWS_LOG(KWS_LOG_ERR, "nowhere");
    cr_assert(eq(int, c.n, 1));
}

Test(core_log, level_names_parse) {
    enum kws_log_level l;
    cr_assert(eq(int, kws_log_level_parse("debug", &l), 0));
    cr_assert(eq(int, l, KWS_LOG_DEBUG));
    cr_assert(eq(int, kws_log_level_parse("loud", &l), -EINVAL));
    cr_assert(eq(str, (char *)kws_log_level_name(KWS_LOG_NOTICE), "notice"));
}

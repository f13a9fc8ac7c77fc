/* log.c: the logging sink indirection and the stderr/journald sink.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum kws_log_level kws__log_max = KWS_LOG_ERR;
static kws_log_fn log_fn;
static void *log_ctx;

static const char *const level_names[] = {
    [KWS_LOG_ERR] = "error",   [KWS_LOG_WARNING] = "warning", [KWS_LOG_NOTICE] = "notice",
    [KWS_LOG_INFO] = "info",   [KWS_LOG_DEBUG] = "debug",
};

void kws_log_set(kws_log_fn fn, void *ctx, enum kws_log_level max_level) {
    log_fn = fn;
    log_ctx = ctx;
    kws__log_max = fn ? max_level : (enum kws_log_level)0;
}

void kws_log(enum kws_log_level level, const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;

    if (!log_fn || level > kws__log_max)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(log_ctx, level, file, line, msg);
}

void kws_log_stderr(void *ctx, enum kws_log_level level, const char *file, int line,
                    const char *msg) {
    char buf[1200];
    int n;

    (void)file;
    (void)line;
    if (ctx)
        n = snprintf(buf, sizeof buf, "kwsd: %s: %s\n", kws_log_level_name(level), msg);
    else
        n = snprintf(buf, sizeof buf, "<%d>%s\n", (int)level, msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    /* One write per line keeps lines whole; a failed log write has nowhere to go. */
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}

int kws_log_level_parse(const char *s, enum kws_log_level *out) {
    for (int l = KWS_LOG_ERR; l <= KWS_LOG_DEBUG; l++) {
        if (strcmp(s, level_names[l]) == 0) {
            *out = (enum kws_log_level)l;
            return 0;
        }
    }
    return -EINVAL;
}

const char *kws_log_level_name(enum kws_log_level level) {
    if (level >= KWS_LOG_ERR && level <= KWS_LOG_DEBUG)
        return level_names[level];
    return "?";
}

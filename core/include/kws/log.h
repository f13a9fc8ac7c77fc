/* kws/log.h: the one logging helper of kwsd.
 *
 * Libraries never print; they call kws_log(), which does nothing until a
 * program installs a sink with kws_log_set(). The daemon's sink writes to
 * stderr with journald's "<N>" priority prefixes (sd-daemon(3)), so
 * journalctl shows levels without any extra library. The level test happens
 * in the macro, before any argument is evaluated.
 *
 *     kws_log_set(kws_log_stderr, NULL, KWS_LOG_INFO);
 *     KWS_LOG(KWS_LOG_WARNING, "xrun on %s (%u so far)", dev, n);
 *
 * Thread-safety: kws_log_set must be called before other threads log; the
 * stderr sink writes each line with one call, so lines do not interleave.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CORE_LOG_H
#define KWS_CORE_LOG_H

#include <stdarg.h>

/* syslog priorities, as journald reads them. */
enum kws_log_level {
    KWS_LOG_ERR = 3,
    KWS_LOG_WARNING = 4,
    KWS_LOG_NOTICE = 5,
    KWS_LOG_INFO = 6,
    KWS_LOG_DEBUG = 7,
};

typedef void (*kws_log_fn)(void *ctx, enum kws_log_level level, const char *file, int line,
                           const char *msg);

/* Installs a sink and the most verbose level it receives. fn NULL silences. */
void kws_log_set(kws_log_fn fn, void *ctx, enum kws_log_level max_level);

/* The current maximum level (what KWS_LOG tests before formatting). */
extern enum kws_log_level kws__log_max;

void kws_log(enum kws_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A sink for stderr. ctx NULL: "<N>message" lines (journald); ctx non-NULL:
 * "kwsd: level: message" lines for a terminal. */
void kws_log_stderr(void *ctx, enum kws_log_level level, const char *file, int line,
                    const char *msg);

/* Parses "error", "warning", "notice", "info", "debug". Returns 0 or -EINVAL. */
int kws_log_level_parse(const char *s, enum kws_log_level *out);
const char *kws_log_level_name(enum kws_log_level level);

#define KWS_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) <= kws__log_max)                                                               \
            kws_log((level), __FILE__, __LINE__, __VA_ARGS__);                                     \
    } while (0)

#endif /* KWS_CORE_LOG_H */

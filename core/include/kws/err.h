/* kws/err.h: the one error table of kwsd.
 *
 * Every fallible function in kwsd returns an int: 0 on success, a negative
 * value on failure. System errors are negated errno values (-ENOMEM, -EIO,
 * -EPIPE for an ALSA xrun); kwsd's own errors start at -4000 and come from the
 * KWS_ERRNO_MAP list below, which generates both the enum and the strings.
 *
 *     int rc = snn_model_load(&m, path, msg, sizeof msg);
 *     if (rc < 0)
 *         fprintf(stderr, "%s: %s (%s)\n", path, msg, kws_strerror(rc));
 *
 * Thread-safety: all functions here are pure and may be called from any thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CORE_ERR_H
#define KWS_CORE_ERR_H

#include <stdio.h>
#include <stdlib.h>

#define KWS_ERRNO_MAP(XX)                                                                          \
    XX(BADMAGIC, "bad magic number")                                                               \
    XX(BADVERSION, "unsupported format version")                                                   \
    XX(BADCHECKSUM, "checksum mismatch")                                                           \
    XX(TRUNCATED, "file truncated")                                                                \
    XX(BADFIELD, "field out of range")                                                             \
    XX(SHAPE, "shape mismatch")                                                                    \
    XX(CONFIG, "invalid configuration")                                                            \
    XX(NODEVICE, "audio device unavailable")                                                       \
    XX(XRUN, "audio overrun")                                                                      \
    XX(FORMAT, "unsupported audio format")                                                         \
    XX(TRANSPORT, "transport error")                                                               \
    XX(DATASET, "bad data set")                                                                    \
    XX(AGAIN, "try again")

enum kws_err {
    KWS__EBASE = -4000,
#define KWS__ERR_ENUM(name, msg) KWS_E##name,
    KWS_ERRNO_MAP(KWS__ERR_ENUM)
#undef KWS__ERR_ENUM
        KWS__ELAST
};

/* Returns a human-readable message for an error code: one of the table above
 * for kwsd's codes, strerror() for negated errno values, "success" for 0. */
const char *kws_strerror(int err);

/* Returns the symbolic name of an error code ("KWS_EBADMAGIC", "ENOMEM"). */
const char *kws_err_name(int err);

/* Formats a message into the caller's buffer msg (msglen bytes; msg may be
 * NULL) and returns err: the one helper behind every "int f(..., char *msg,
 * size_t msglen)" of kwsd, e.g. return kws_errmsg(KWS_EBADFIELD, msg, len,
 * "layer[%d].k: %d is even", l, k); */
int kws_errmsg(int err, char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Aborts with file, line and a message. Use through KWS_ASSERT for programmer
 * errors (wrong shapes at init), never for bad input. */
_Noreturn void kws_abort(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define KWS_ASSERT(x)                                                                              \
    do {                                                                                           \
        if (!(x))                                                                                  \
            kws_abort(__FILE__, __LINE__, "assertion failed: %s", #x);                             \
    } while (0)

#define KWS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Names the kind of a file that is not a regular one ("a directory", "a
 * FIFO", "a character device", ...), from its st_mode, for the messages that
 * refuse it (the model loader and the configuration loader alike). */
const char *kws_file_kind(unsigned int mode);

struct stat;

/* Opens path for reading only if it is a regular file, without waiting:
 * O_NONBLOCK keeps the open of a FIFO from waiting for a writer (and the
 * event loop with it, on a reload). Returns the descriptor, with *st filled,
 * or a negative error: -errno when path cannot be opened or examined,
 * -EISDIR for a directory and -EINVAL for any other kind of file (st->st_mode
 * then says which, for kws_file_kind). The one way kwsd opens the files it
 * is given by name: models, configurations, keys and passwords. */
int kws_open_regular(const char *path, struct stat *st);

/* Reads the first line of the regular file path into buf (len bytes, NUL
 * terminated; the line end and trailing blanks dropped). With secret set, a
 * file that others may read or write (mode & 007) is refused, as ssh refuses
 * such a private key. The one reader of the one-line files that hold a key or
 * a password. Returns the line's length, or a negative error with the reason,
 * naming path ("path: ..."), in why (whylen bytes): -errno when it cannot be
 * opened or read, -EINVAL when it is not a regular file or its first line is
 * longer than len - 1, -EPERM for a secret file open to others. */
int kws_first_line_read(const char *path, int secret, char *buf, size_t len, char *why,
                        size_t whylen);

#endif /* KWS_CORE_ERR_H */

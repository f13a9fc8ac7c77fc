/* err.c: messages and names for kwsd's error codes.
 *
 * The strings come from the KWS_ERRNO_MAP X-macro in kws/err.h, so the enum
 * and its messages cannot drift apart. Negated errno values fall through to
 * the C library.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *kws_strerror(int err) {
    if (err == 0)
        return "success";
    switch (err) {
#define KWS__ERR_MSG(name, msg)                                                                    \
    case KWS_E##name:                                                                              \
        return msg;
        KWS_ERRNO_MAP(KWS__ERR_MSG)
#undef KWS__ERR_MSG
    default:
        break;
    }
    if (err < 0 && err > -4000)
        return strerror(-err);
    return "unknown error";
}

const char *kws_err_name(int err) {
    switch (err) {
    case 0:
        return "OK";
#define KWS__ERR_NAME(name, msg)                                                                   \
    case KWS_E##name:                                                                              \
        return "KWS_E" #name;
        KWS_ERRNO_MAP(KWS__ERR_NAME)
#undef KWS__ERR_NAME
    case -ENOMEM:
        return "ENOMEM";
    case -EINVAL:
        return "EINVAL";
    case -EIO:
        return "EIO";
    case -ENOENT:
        return "ENOENT";
    case -EAGAIN:
        return "EAGAIN";
    case -EPIPE:
        return "EPIPE";
    case -ENODEV:
        return "ENODEV";
    case -EACCES:
        return "EACCES";
    case -EBUSY:
        return "EBUSY";
    default:
        return "UNKNOWN";
    }
}

int kws_errmsg(int err, char *msg, size_t msglen, const char *fmt, ...) {
    if (msg && msglen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return err;
}

void kws_abort(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

const char *kws_file_kind(unsigned int mode) {
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

int kws_open_regular(const char *path, struct stat *st) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
    }
    return fd;
}

int kws_first_line_read(const char *path, int secret, char *buf, size_t len, char *why,
                        size_t whylen) {
    KWS_ASSERT(len >= 2 && len <= INT_MAX);
    struct stat st = {0};
    int fd = kws_open_regular(path, &st);
    if (fd < 0) {
        if (fd == -EISDIR || fd == -EINVAL)
            snprintf(why, whylen, "%s: %s, not a regular file", path, kws_file_kind(st.st_mode));
        else
            snprintf(why, whylen, "%s: %s", path, strerror(-fd));
        return fd;
    }
    if (secret && (st.st_mode & 007)) {
        snprintf(why, whylen, "%s: others may read or write it (mode %04o): chmod o-rwx %s", path,
                 (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -EPERM;
    }
    ssize_t n;
    do
        n = read(fd, buf, len - 1);
    while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(e));
        return -e;
    }
    buf[n] = '\0';
    size_t line = strcspn(buf, "\r\n");
    if (line == (size_t)n && (size_t)n == len - 1) {
        snprintf(why, whylen, "%s: first line longer than %zu bytes", path, len - 1);
        return -EINVAL;
    }
    while (line > 0 && (buf[line - 1] == ' ' || buf[line - 1] == '\t'))
        line--;
    buf[line] = '\0';
    return (int)line;
}

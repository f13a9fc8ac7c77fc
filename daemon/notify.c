/* notify.c: systemd's readiness and watchdog protocol, by hand.
 *
 * Type=notify services tell systemd their state by sending a datagram such
 * as "READY=1" to the AF_UNIX socket named in $NOTIFY_SOCKET (a path, or an
 * abstract name when it starts with '@'). That is all sd_notify() does for
 * kwsd's needs, so kwsd writes it itself and needs no libsystemd.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kwsd.h"

int kwsd_notify(const char *state) {
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t len;
    int fd, rc = 1;

    if (!path || !*path)
        return 0;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
        return -EINVAL;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

uint64_t kwsd_watchdog_ms(void) {
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    char *end;
    unsigned long long v;

    if (!usec)
        return 0;
    if (pid && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    errno = 0;
    v = strtoull(usec, &end, 10);
    if (errno || end == usec || *end || v == 0)
        return 0;
    return v / 1000;
}

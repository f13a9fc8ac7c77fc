/* kt_proc.h: what /proc says of a running process, for the tests and the
 * benchmarks that run kwsd. No Criterion here: a benchmark includes it too.
 *
 *     int fds = kt_proc_fds(pid);     // -1 if the process is gone
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWSD_TESTS_KT_PROC_H
#define KWSD_TESTS_KT_PROC_H

#include <dirent.h>
#include <stdio.h>
#include <sys/types.h>

/* How many descriptors pid has open, or -1 if /proc/pid/fd cannot be read. */
static inline int kt_proc_fds(pid_t pid) {
    char path[64];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

#endif /* KWSD_TESTS_KT_PROC_H */

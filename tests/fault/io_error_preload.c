/* LD_PRELOAD shim that makes the disk fail under a real fieldsync process, for the I/O
 * error tests (tests/tests/disk_io_errors.rs).
 *
 * FIELDSYNC_FAULT_PATH   substring of the paths to fail (e.g. "agent.db"); unset: no faults
 * FIELDSYNC_FAULT_AFTER  matching writes/syncs to let through before failing them all (0)
 * FIELDSYNC_FAULT_MARK   file created the first time a fault fires, so the test knows
 *
 * Every write, pwrite and fsync on a matching file after the first N fails with EIO, as a
 * dying disk does: SQLite sees SQLITE_IOERR exactly where it would on real hardware. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static long seen;

static int should_fail(int fd) {
    const char *want = getenv("FIELDSYNC_FAULT_PATH");
    if (!want || !*want) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    if (!strstr(path, want)) return 0;
    const char *after = getenv("FIELDSYNC_FAULT_AFTER");
    long allowed = after ? atol(after) : 0;
    if (__atomic_fetch_add(&seen, 1, __ATOMIC_SEQ_CST) < allowed) return 0;
    const char *mark = getenv("FIELDSYNC_FAULT_MARK");
    if (mark) {
        int m = open(mark, O_CREAT | O_WRONLY, 0644);
        if (m >= 0) close(m);
    }
    return 1;
}

#define REAL(name, ret, ...) \
    static ret (*real)(__VA_ARGS__); \
    if (!real) real = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, name)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL("write", ssize_t, int, const void *, size_t);
    if (should_fail(fd)) { errno = EIO; return -1; }
    return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL("pwrite", ssize_t, int, const void *, size_t, off_t);
    if (should_fail(fd)) { errno = EIO; return -1; }
    return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL("pwrite64", ssize_t, int, const void *, size_t, off_t);
    if (should_fail(fd)) { errno = EIO; return -1; }
    return real(fd, buf, n, off);
}

int fsync(int fd) {
    REAL("fsync", int, int);
    if (should_fail(fd)) { errno = EIO; return -1; }
    return real(fd);
}

int fdatasync(int fd) {
    REAL("fdatasync", int, int);
    if (should_fail(fd)) { errno = EIO; return -1; }
    return real(fd);
}

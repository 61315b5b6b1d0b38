/*
 * libipsecif_pfkey_preload.so: lets unmodified PF_KEY programs (setkey(8),
 * racoon(8), an IKE daemon) talk to ipsecifd instead of the kernel.
 *
 *   LD_PRELOAD=libipsecif_pfkey_preload.so IPSECIF_PFKEY_SOCKET=/run/ipsecifd.pfkey setkey -D
 *
 * socket(PF_KEY, SOCK_RAW, PF_KEY_V2) returns a UNIX-domain SOCK_SEQPACKET
 * socket connected to the daemon's PF_KEY socket (IPSECIF_PFKEY_SOCKET,
 * default /run/ipsecifd.pfkey). Messages keep their boundaries both ways,
 * so send/sendto/sendmsg/write and recv/recvfrom/recvmsg/read (MSG_PEEK
 * included) work natively on it. Sends on it never raise SIGPIPE (a gone
 * daemon gives EPIPE), as a kernel PF_KEY socket never does.
 *
 * A kernel answers a PF_KEY request inside send(); programs rely on that
 * and read right after sending, sometimes without blocking. So a send on
 * such a socket returns only once the daemon has answered: the daemon
 * consumes a request only after it has queued the replies, and the
 * request is charged to this socket's send queue until it is consumed, so
 * an empty send queue (SIOCOUTQ 0) means the reply is readable. The wait is
 * bounded (1 s, the time setkey waits for a reply).
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef PF_KEY
#define PF_KEY 15
#endif
#define PREL_PF_KEY_V2 2
#define PREL_DEFAULT_PATH "/run/ipsecifd.pfkey"
#define PREL_FDS 4096
#define PREL_WAIT_NS 1000000000L

/* Exported: the interposed functions keep their libc names. */
#define PREL_EXPORT __attribute__((visibility("default")))

static unsigned char pfkey_fds[PREL_FDS / 8];

static bool is_pfkey(int fd)
{
    return fd >= 0 && fd < PREL_FDS &&
           (__atomic_load_n(&pfkey_fds[fd / 8], __ATOMIC_RELAXED) & (1u << (fd % 8))) != 0;
}

static void mark(int fd, bool on)
{
    unsigned char bit;

    if (fd < 0 || fd >= PREL_FDS) {
        return;
    }
    bit = (unsigned char)(1u << (fd % 8));
    if (on) {
        __atomic_fetch_or(&pfkey_fds[fd / 8], bit, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_and(&pfkey_fds[fd / 8], (unsigned char)~bit, __ATOMIC_RELAXED);
    }
}

static void *next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait until the daemon has consumed everything sent on fd (see the top). */
static void wait_answered(int fd)
{
    int64_t end = mono_ns() + PREL_WAIT_NS;
    int saved = errno;

    for (;;) {
        int q = 0;
        struct timespec nap = {0, 100000};

        if (ioctl(fd, SIOCOUTQ, &q) < 0 || q <= 0 || mono_ns() >= end) {
            break;
        }
        nanosleep(&nap, NULL);
    }
    errno = saved;
}

PREL_EXPORT int socket(int domain, int type, int protocol)
{
    int (*real)(int, int, int) = (int (*)(int, int, int))next("socket");
    int (*real_close)(int) = (int (*)(int))next("close");
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct sockaddr_un sun;
    const char *path;
    int fd;
    int saved;

    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (domain != PF_KEY || base != SOCK_RAW || protocol != PREL_PF_KEY_V2) {
        return real(domain, type, protocol);
    }
    path = getenv("IPSECIF_PFKEY_SOCKET");
    if (path == NULL || path[0] == '\0') {
        path = PREL_DEFAULT_PATH;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path));
    fd = real(AF_UNIX, SOCK_SEQPACKET | (type & SOCK_CLOEXEC), 0);
    if (fd < 0) {
        return -1;
    }
    /* Connect blocking, then give the program the mode it asked for. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        ((type & SOCK_NONBLOCK) != 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)) {
        saved = errno;
        if (real_close != NULL) {
            real_close(fd);
        }
        errno = saved;
        return -1;
    }
    mark(fd, true);
    return fd;
}

PREL_EXPORT int close(int fd)
{
    int (*real)(int) = (int (*)(int))next("close");

    mark(fd, false);
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

PREL_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    ssize_t (*real)(int, const void *, size_t, int) =
        (ssize_t(*)(int, const void *, size_t, int))next("send");
    ssize_t n;

    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (!is_pfkey(fd)) {
        return real(fd, buf, len, flags);
    }
    n = real(fd, buf, len, flags | MSG_NOSIGNAL);
    if (n > 0) {
        wait_answered(fd);
    }
    return n;
}

PREL_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
                           const struct sockaddr *to, socklen_t tolen)
{
    ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t) =
        (ssize_t(*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))next(
            "sendto");
    ssize_t n;

    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (!is_pfkey(fd)) {
        return real(fd, buf, len, flags, to, tolen);
    }
    /* A PF_KEY socket has no peer addresses; the connection is the peer. */
    n = real(fd, buf, len, flags | MSG_NOSIGNAL, NULL, 0);
    if (n > 0) {
        wait_answered(fd);
    }
    return n;
}

PREL_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    ssize_t (*real)(int, const struct msghdr *, int) =
        (ssize_t(*)(int, const struct msghdr *, int))next("sendmsg");
    struct msghdr m;
    ssize_t n;

    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (!is_pfkey(fd) || msg == NULL) {
        return real(fd, msg, flags);
    }
    m = *msg;
    m.msg_name = NULL;
    m.msg_namelen = 0;
    n = real(fd, &m, flags | MSG_NOSIGNAL);
    if (n > 0) {
        wait_answered(fd);
    }
    return n;
}

PREL_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
    ssize_t (*real)(int, const void *, size_t) =
        (ssize_t(*)(int, const void *, size_t))next("write");

    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (!is_pfkey(fd)) {
        return real(fd, buf, len);
    }
    /* Through send(): a kernel PF_KEY socket never raises SIGPIPE. */
    return send(fd, buf, len, 0);
}

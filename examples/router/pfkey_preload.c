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
 * bounded (1 s, the time setkey waits for a reply). Sends a kernel refuses
 * fail here the same way: shorter than a sadb_msg header (0 bytes
 * included) or longer than the daemon takes, with EMSGSIZE.
 *
 * Per-socket policy: setsockopt(IP_IPSEC_POLICY / IPV6_IPSEC_POLICY) on an
 * IPv4 or IPv6 socket (racoon's bypass on its IKE sockets) goes to the
 * daemon as libipsecif's X_SOCKPOLICY message, over one PF_KEY connection
 * of this process, which the daemon checks and records (a malformed policy
 * gives EINVAL, as the kernel gives); getsockopt of the same options reads
 * it back (the caller's buffer holds a sadb_x_policy naming the direction;
 * a buffer too small gives ERANGE with *optlen set to the length needed).
 * bind() tells the daemon the socket's address, close() forgets it; when
 * the process ends, the daemon forgets all of its sockets. A NULL option
 * value clears both directions. Without a daemon the call fails with the
 * connection's errno.
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <pthread.h>
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

#include "ipsecif/pfkey.h"

#ifndef PF_KEY
#define PF_KEY 15
#endif
#define PREL_PF_KEY_V2 2
#define PREL_DEFAULT_PATH "/run/ipsecifd.pfkey"
#define PREL_FDS 4096
#define PREL_WAIT_NS 1000000000L
/* Largest message the daemon takes (ports/posix: IPSECIF_POSIX_PFKEY_MSG_MAX). */
#define PREL_MSG_MAX 65536u
/* Largest per-socket policy accepted from setsockopt (Linux: a page). */
#define PREL_POLICY_MAX 4096u
#define PREL_HDR 16u
#define PREL_SOCK_OFF (PREL_HDR + IPSECIF_SOCKPOL_SOCK_LEN)

/* Exported: the interposed functions keep their libc names. */
#define PREL_EXPORT __attribute__((visibility("default")))

/* PF_KEY sockets of the program, and sockets that have a per-socket policy. */
static unsigned char pfkey_fds[PREL_FDS / 8];
static unsigned char policy_fds[PREL_FDS / 8];

static bool is_set(const unsigned char *set, int fd)
{
    return fd >= 0 && fd < PREL_FDS &&
           (__atomic_load_n(&set[fd / 8], __ATOMIC_RELAXED) & (1u << (fd % 8))) != 0;
}

static bool is_pfkey(int fd)
{
    return is_set(pfkey_fds, fd);
}

static void mark_in(unsigned char *set, int fd, bool on)
{
    unsigned char bit;

    if (fd < 0 || fd >= PREL_FDS) {
        return;
    }
    bit = (unsigned char)(1u << (fd % 8));
    if (on) {
        __atomic_fetch_or(&set[fd / 8], bit, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_and(&set[fd / 8], (unsigned char)~bit, __ATOMIC_RELAXED);
    }
}

static void mark(int fd, bool on)
{
    mark_in(pfkey_fds, fd, on);
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

/* A blocking SOCK_SEQPACKET connection to the daemon's PF_KEY socket, or -1. */
static int daemon_connect(int cloexec)
{
    int (*real)(int, int, int) = (int (*)(int, int, int))next("socket");
    int (*real_close)(int) = (int (*)(int))next("close");
    struct sockaddr_un sun;
    const char *path;
    int fd;
    int saved;

    if (real == NULL || real_close == NULL) {
        errno = ENOSYS;
        return -1;
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
    fd = real(AF_UNIX, SOCK_SEQPACKET | cloexec, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        saved = errno;
        real_close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

PREL_EXPORT int socket(int domain, int type, int protocol)
{
    int (*real)(int, int, int) = (int (*)(int, int, int))next("socket");
    int (*real_close)(int) = (int (*)(int))next("close");
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    int fd;
    int saved;

    if (real == NULL || real_close == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (domain != PF_KEY || base != SOCK_RAW || protocol != PREL_PF_KEY_V2) {
        return real(domain, type, protocol);
    }
    /* Connect blocking, then give the program the mode it asked for. */
    fd = daemon_connect(type & SOCK_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    if ((type & SOCK_NONBLOCK) != 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        saved = errno;
        real_close(fd);
        errno = saved;
        return -1;
    }
    mark(fd, true);
    return fd;
}

/* ---- Per-socket policy ---- */

static pthread_mutex_t sp_lock = PTHREAD_MUTEX_INITIALIZER;
static int sp_fd = -1; /* this process's connection for X_SOCKPOLICY */
static pid_t sp_pid;   /* the process that opened it (a forked child opens its own) */
static uint32_t sp_seq;

static void put16h(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static void put32h(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t get32h(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

static bool is_policy_opt(int level, int optname)
{
    return (level == IPPROTO_IP && optname == IP_IPSEC_POLICY) ||
           (level == IPPROTO_IPV6 && optname == IPV6_IPSEC_POLICY);
}

/* The socket block: fd, protocol, family and what the socket is bound to. */
static int sock_block(int fd, uint8_t *b)
{
    int (*real_gso)(int, int, int, void *, socklen_t *) =
        (int (*)(int, int, int, void *, socklen_t *))next("getsockopt");
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int dom = 0, proto = 0;
    socklen_t il = sizeof(int);

    memset(b, 0, IPSECIF_SOCKPOL_SOCK_LEN);
    if (real_gso == NULL || real_gso(fd, SOL_SOCKET, SO_DOMAIN, &dom, &il) < 0) {
        return -1;
    }
    il = sizeof(int);
    if (real_gso(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &il) < 0) {
        return -1;
    }
    if (dom != AF_INET && dom != AF_INET6) {
        /* The option is an IP one; a kernel says so for other sockets. */
        errno = ENOPROTOOPT;
        return -1;
    }
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        return -1;
    }
    put32h(b, (uint32_t)fd);
    b[4] = (uint8_t)proto;
    if (dom == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

        b[5] = IPSECIF_AF_INET;
        memcpy(b + 6, &sin->sin_port, 2);
        memcpy(b + 8, &sin->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

        b[5] = IPSECIF_AF_INET6;
        memcpy(b + 6, &sin6->sin6_port, 2);
        memcpy(b + 8, &sin6->sin6_addr, 16);
    }
    return 0;
}

/* The connection, opened on first use in this process; -1 with errno. */
static int sp_conn(void)
{
    int (*real_close)(int) = (int (*)(int))next("close");

    if (sp_fd >= 0 && sp_pid != getpid()) {
        /* A forked child: the inherited connection is the parent's. */
        if (real_close != NULL) {
            real_close(sp_fd);
        }
        sp_fd = -1;
    }
    if (sp_fd < 0) {
        struct timeval tv = {1, 0};

        sp_fd = daemon_connect(SOCK_CLOEXEC);
        if (sp_fd < 0) {
            return -1;
        }
        setsockopt(sp_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        sp_pid = getpid();
    }
    return sp_fd;
}

/*
 * One X_SOCKPOLICY exchange: op on fd with body (a sadb_x_policy, may be
 * NULL). The reply's policy (GET) goes to out (cap bytes), its length to
 * *out_len. Returns 0 or -1 with errno (the daemon's errno for a refusal).
 */
static int sp_call(int fd, uint8_t op, const void *body, size_t body_len, uint8_t *out, size_t cap,
                   size_t *out_len)
{
    ssize_t (*real_send)(int, const void *, size_t, int) =
        (ssize_t(*)(int, const void *, size_t, int))next("send");
    ssize_t (*real_recv)(int, void *, size_t, int) =
        (ssize_t(*)(int, void *, size_t, int))next("recv");
    uint8_t *msg;
    size_t len = PREL_SOCK_OFF + ((body_len + 7u) & ~(size_t)7u);
    uint32_t seq;
    int c, rc = -1, saved = errno;
    int keep = errno;

    if (real_send == NULL || real_recv == NULL) {
        errno = ENOSYS;
        return -1;
    }
    msg = calloc(1, PREL_SOCK_OFF + PREL_POLICY_MAX + 8u);
    if (msg == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (sock_block(fd, msg + PREL_HDR) < 0) {
        free(msg);
        return -1;
    }
    pthread_mutex_lock(&sp_lock);
    c = sp_conn();
    if (c < 0) {
        goto out;
    }
    seq = ++sp_seq;
    msg[0] = PREL_PF_KEY_V2;
    msg[1] = IPSECIF_SADB_X_SOCKPOLICY;
    msg[3] = op;
    put16h(msg + 4, (uint16_t)(len / 8));
    put32h(msg + 8, seq);
    put32h(msg + 12, (uint32_t)getpid());
    if (body_len > 0) {
        memcpy(msg + PREL_SOCK_OFF, body, body_len);
    }
    if (real_send(c, msg, len, MSG_NOSIGNAL) != (ssize_t)len) {
        goto broken;
    }
    for (;;) {
        ssize_t n = real_recv(c, msg, PREL_SOCK_OFF + PREL_POLICY_MAX + 8u, 0);

        if (n < (ssize_t)PREL_HDR) {
            goto broken;
        }
        /* A late reply to an earlier call that timed out is skipped. */
        if (msg[1] != IPSECIF_SADB_X_SOCKPOLICY || get32h(msg + 8) != seq) {
            continue;
        }
        if (msg[2] != 0) {
            saved = msg[2];
        } else {
            size_t pl = (size_t)n > PREL_SOCK_OFF ? (size_t)n - PREL_SOCK_OFF : 0;

            if (out_len != NULL) {
                *out_len = pl;
            }
            if (out != NULL) {
                memcpy(out, msg + PREL_SOCK_OFF, pl < cap ? pl : cap);
            }
            rc = 0;
            saved = keep;
        }
        errno = saved;
        goto out;
    }
broken:
    /* The daemon went away or did not answer: start over next time. */
    saved = errno == 0 || errno == EAGAIN ? ETIMEDOUT : errno;
    {
        int (*real_close)(int) = (int (*)(int))next("close");

        if (real_close != NULL) {
            real_close(c);
        }
        sp_fd = -1;
    }
    errno = saved;
out:
    saved = errno;
    pthread_mutex_unlock(&sp_lock);
    free(msg);
    errno = saved;
    return rc;
}

PREL_EXPORT int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
{
    int (*real)(int, int, int, const void *, socklen_t) =
        (int (*)(int, int, int, const void *, socklen_t))next("setsockopt");

    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (!is_policy_opt(level, optname) || is_pfkey(fd)) {
        return real(fd, level, optname, optval, optlen);
    }
    if ((int)optlen <= 0 || optlen > PREL_POLICY_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (optval == NULL) {
        /* As Linux: no policy given clears both directions. */
        uint8_t pol[16];
        int d;

        for (d = 1; d <= 2; d++) {
            memset(pol, 0, sizeof(pol));
            put16h(pol, 2);
            put16h(pol + 2, IPSECIF_SADB_X_EXT_POLICY);
            put16h(pol + 4, 3); /* IPSEC_POLICY_ENTRUST */
            pol[6] = (uint8_t)d;
            if (sp_call(fd, IPSECIF_SOCKPOL_OP_SET, pol, sizeof(pol), NULL, 0, NULL) < 0) {
                return -1;
            }
        }
        return 0;
    }
    if (sp_call(fd, IPSECIF_SOCKPOL_OP_SET, optval, optlen, NULL, 0, NULL) < 0) {
        return -1;
    }
    mark_in(policy_fds, fd, true);
    return 0;
}

PREL_EXPORT int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
{
    int (*real)(int, int, int, void *, socklen_t *) =
        (int (*)(int, int, int, void *, socklen_t *))next("getsockopt");
    uint8_t pol[PREL_POLICY_MAX];
    size_t n = 0;

    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (!is_policy_opt(level, optname) || is_pfkey(fd)) {
        return real(fd, level, optname, optval, optlen);
    }
    if (optval == NULL || optlen == NULL || *optlen < PREL_HDR) {
        errno = EINVAL;
        return -1;
    }
    if (sp_call(fd, IPSECIF_SOCKPOL_OP_GET, optval, PREL_HDR, pol, sizeof(pol), &n) < 0) {
        return -1;
    }
    if (n > sizeof(pol) || n > *optlen) {
        *optlen = (socklen_t)n;
        errno = ERANGE;
        return -1;
    }
    memcpy(optval, pol, n);
    *optlen = (socklen_t)n;
    return 0;
}

PREL_EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    int (*real)(int, const struct sockaddr *, socklen_t) =
        (int (*)(int, const struct sockaddr *, socklen_t))next("bind");
    int rc;

    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    rc = real(fd, addr, len);
    if (rc == 0 && is_set(policy_fds, fd)) {
        int saved = errno;

        /* The policy follows the socket to its address; best effort. */
        (void)sp_call(fd, IPSECIF_SOCKPOL_OP_BIND, NULL, 0, NULL, 0, NULL);
        errno = saved;
    }
    return rc;
}

PREL_EXPORT int close(int fd)
{
    int (*real)(int) = (int (*)(int))next("close");

    mark(fd, false);
    if (is_set(policy_fds, fd)) {
        int saved = errno;

        mark_in(policy_fds, fd, false);
        (void)sp_call(fd, IPSECIF_SOCKPOL_OP_CLOSE, NULL, 0, NULL, 0, NULL);
        errno = saved;
    }
    if (fd >= 0 && fd == sp_fd) {
        /* The program closes our connection (closing every descriptor). */
        sp_fd = -1;
    }
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

/* What a kernel PF_KEY socket refuses to send: not a header, or too long. */
static bool size_ok(size_t len)
{
    if (len < PREL_HDR || len > PREL_MSG_MAX) {
        errno = EMSGSIZE;
        return false;
    }
    return true;
}

static size_t msg_len(const struct msghdr *msg)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < (size_t)msg->msg_iovlen; i++) {
        n += msg->msg_iov[i].iov_len;
    }
    return n;
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
    if (!size_ok(len)) {
        return -1;
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
    if (!size_ok(len)) {
        return -1;
    }
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
    if (!size_ok(msg_len(msg))) {
        return -1;
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

/* Outer sockets: raw ESP over IPv4 and IPv6, UDP for NAT-T (RFC 3948);
 * in host mode also raw AH and IPPROTO_RAW sockets for whole packets.
 *
 * A raw IPv4 socket hands over the whole packet, IP header included, so it
 * goes to ipsecif_input(). Raw IPv6 sockets hand over the payload only; the
 * addresses, traffic class and hop limit come from recvmsg() and go to
 * ipsecif_input_payload(), which puts an IP header back in the headroom
 * left for it (AH covers the header; host transport mode needs a whole
 * packet). UDP sockets hand over the payload with its ports, for
 * ipsecif_input_esp(). NAT-T sockets are plain UDP sockets (no UDP_ENCAP):
 * the kernel must hand ESP in UDP to us, not to its own IPsec. */
#define _GNU_SOURCE /* struct in6_pktinfo, struct in_pktinfo */

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ipsecif_posix.h"

/* Control data room for the ancillary items one packet carries. */
#define CMSG_ROOM 256

static void close_fd(struct ipsecif_posix_outer *o, int *fd)
{
    if (*fd >= 0) {
        ipsecif_posix_loop_del(o->loop, *fd);
        close(*fd);
        *fd = -1;
    }
}

static void count_input(struct ipsecif_posix_outer *o, int rc)
{
    o->stats.rx_packets++;
    if (rc != IPSECIF_OK) {
        o->stats.rx_rejected++;
        if (ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
            ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "outer packet dropped: %s", ipsecif_strerror(rc));
        }
    }
}

/* Receive one datagram; returns its length, 0 when there is nothing more to
 * read now, -1 when it was dropped (and reading may go on). */
static ssize_t recv_one(struct ipsecif_posix_outer *o, int fd, uint8_t *buf, struct msghdr *m)
{
    ssize_t n = recvmsg(fd, m, MSG_DONTWAIT);

    (void)buf;
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return 0;
        }
        o->stats.rx_errors++;
        return -1;
    }
    if ((m->msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        o->stats.rx_truncated++;
        return -1;
    }
    return n;
}

/* Read a bounded batch per wakeup so that one busy socket cannot starve the others. */
#define RX_BATCH 64

/* Receive whole IPv4 packets (raw ESP or AH) into buf for ipsecif_input(). */
static void recv_whole(struct ipsecif_posix_outer *o, int fd, uint8_t *buf)
{
    int i;

    for (i = 0; i < RX_BATCH; i++) {
        struct sockaddr_in from;
        struct iovec iov = {buf, IPSECIF_POSIX_RXBUF};
        struct msghdr m;
        struct ipsecif_buf pkt;
        ssize_t n;

        memset(&m, 0, sizeof(m));
        m.msg_name = &from;
        m.msg_namelen = sizeof(from);
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        n = recv_one(o, fd, buf, &m);
        if (n == 0) {
            break;
        }
        if (n < 0 || o->ctx == NULL) {
            continue;
        }
        pkt.base = buf;
        pkt.cap = IPSECIF_POSIX_RXBUF;
        pkt.off = 0;
        pkt.len = (size_t)n;
        count_input(o, ipsecif_input(o->ctx, &pkt, ipsecif_posix_now_ms()));
    }
}

static void on_raw4(void *arg, int fd, short revents)
{
    struct ipsecif_posix_outer *o = arg;

    (void)revents;
    recv_whole(o, fd, o->buf4);
}

static void on_ah4(void *arg, int fd, short revents)
{
    struct ipsecif_posix_outer *o = arg;

    (void)revents;
    recv_whole(o, fd, o->bufah);
}

/* Fill meta's local address, traffic class and hop limit from the control data. */
static bool parse_cmsgs(struct msghdr *m, struct ipsecif_outer_meta *meta)
{
    struct cmsghdr *c;
    bool have_dst = false;
    int v;

    for (c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            meta->dst.family = IPSECIF_AF_INET6;
            memcpy(meta->dst.bytes, &pi.ipi6_addr, 16);
            have_dst = true;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS &&
                   c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            meta->tos = (uint8_t)v;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT &&
                   c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            meta->ttl = (uint8_t)v;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
                   c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
            struct in_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            meta->dst.family = IPSECIF_AF_INET;
            memcpy(meta->dst.bytes, &pi.ipi_addr, 4);
            have_dst = true;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS &&
                   c->cmsg_len >= CMSG_LEN(1)) {
            meta->tos = *(const uint8_t *)CMSG_DATA(c);
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL &&
                   c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            meta->ttl = (uint8_t)v;
        }
    }
    return have_dst;
}

/* Receive payload-only packets (raw IPv6, UDP) after IPSECIF_POSIX_RXHEAD
 * bytes of headroom (where the library puts back the headers for host
 * traffic) and pass them with their meta: proto ESP or AH (raw IPv6) to
 * ipsecif_input_payload(), proto 0 (UDP, NAT-T) to ipsecif_input_esp(). */
static void recv_payloads(struct ipsecif_posix_outer *o, int fd, uint8_t *buf, uint8_t family,
                          uint16_t local_port, uint8_t proto)
{
    const size_t head = IPSECIF_POSIX_RXHEAD;
    int i;

    for (i = 0; i < RX_BATCH; i++) {
        struct sockaddr_storage from;
        union {
            struct cmsghdr align;
            uint8_t b[CMSG_ROOM];
        } cbuf;
        struct iovec iov = {buf + head, IPSECIF_POSIX_RXBUF - head};
        struct msghdr m;
        struct ipsecif_outer_meta meta;
        struct ipsecif_buf pkt;
        ssize_t n;

        memset(&m, 0, sizeof(m));
        m.msg_name = &from;
        m.msg_namelen = sizeof(from);
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = cbuf.b;
        m.msg_controllen = sizeof(cbuf.b);
        n = recv_one(o, fd, buf, &m);
        if (n == 0) {
            break;
        }
        if (n < 0 || o->ctx == NULL) {
            continue;
        }
        memset(&meta, 0, sizeof(meta));
        meta.family = family;
        if (family == IPSECIF_AF_INET && from.ss_family == AF_INET) {
            struct sockaddr_in sin;

            memcpy(&sin, &from, sizeof(sin));
            meta.src.family = IPSECIF_AF_INET;
            memcpy(meta.src.bytes, &sin.sin_addr, 4);
            meta.sport = ntohs(sin.sin_port);
        } else if (family == IPSECIF_AF_INET6 && from.ss_family == AF_INET6) {
            struct sockaddr_in6 sin6;

            memcpy(&sin6, &from, sizeof(sin6));
            meta.src.family = IPSECIF_AF_INET6;
            memcpy(meta.src.bytes, &sin6.sin6_addr, 16);
            meta.sport = ntohs(sin6.sin6_port);
        } else {
            o->stats.rx_errors++;
            continue;
        }
        if (!parse_cmsgs(&m, &meta) || meta.dst.family != family) {
            o->stats.rx_errors++;
            continue;
        }
        if (local_port == 0) {
            meta.sport = 0; /* raw socket: no ports */
        } else {
            meta.dport = local_port;
        }
        pkt.base = buf;
        pkt.cap = IPSECIF_POSIX_RXBUF;
        pkt.off = head;
        pkt.len = (size_t)n;
        if (proto != 0) {
            count_input(o,
                        ipsecif_input_payload(o->ctx, &meta, proto, &pkt, ipsecif_posix_now_ms()));
        } else {
            count_input(o, ipsecif_input_esp(o->ctx, &meta, &pkt, ipsecif_posix_now_ms()));
        }
    }
}

static void on_raw6(void *arg, int fd, short revents)
{
    struct ipsecif_posix_outer *o = arg;

    (void)revents;
    recv_payloads(o, fd, o->buf6, IPSECIF_AF_INET6, 0, IPSECIF_IPPROTO_ESP);
}

static void on_ah6(void *arg, int fd, short revents)
{
    struct ipsecif_posix_outer *o = arg;

    (void)revents;
    recv_payloads(o, fd, o->bufah, IPSECIF_AF_INET6, 0, IPSECIF_IPPROTO_AH);
}

static void on_natt(void *arg, int fd, short revents)
{
    struct ipsecif_posix_natt *s = arg;

    (void)revents;
    recv_payloads(s->outer, fd, s->buf, s->family, s->port, 0);
}

static int set_int(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value));
}

static int set_mark(int fd, uint32_t mark)
{
#ifdef SO_MARK
    if (fd < 0 || mark == 0) {
        return 0;
    }
    return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
#else
    (void)fd;
    if (mark == 0) {
        return 0;
    }
    errno = ENOTSUP;
    return -1;
#endif
}

/* A deep receive queue: a burst from a fast sender waits for the next read
 * instead of being dropped (SO_RCVBUFFORCE with CAP_NET_ADMIN, else up to
 * net.core.rmem_max). Best effort: the default queue still works. */
static void grow_rcvbuf(int fd)
{
    if (set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, IPSECIF_POSIX_SOCKBUF) < 0) {
        (void)set_int(fd, SOL_SOCKET, SO_RCVBUF, IPSECIF_POSIX_SOCKBUF);
    }
}

int ipsecif_posix_outer_open(struct ipsecif_posix_outer *o, struct ipsecif_posix_loop *loop,
                             size_t natt_cap)
{
    int saved;
    size_t i;

    memset(o, 0, sizeof(*o));
    o->loop = loop;
    o->raw4 = -1;
    o->raw6 = -1;
    o->ah4 = -1;
    o->ah6 = -1;
    o->send4 = -1;
    o->send6 = -1;
    o->buf4 = malloc(IPSECIF_POSIX_RXBUF);
    o->buf6 = malloc(IPSECIF_POSIX_RXBUF);
    if (natt_cap > 0) {
        o->natt = calloc(natt_cap, sizeof(*o->natt));
    }
    if (o->buf4 == NULL || o->buf6 == NULL || (natt_cap > 0 && o->natt == NULL)) {
        errno = ENOMEM;
        goto fail;
    }
    o->natt_cap = natt_cap;
    for (i = 0; i < natt_cap; i++) {
        o->natt[i].fd = -1;
        o->natt[i].outer = o;
    }
    o->raw4 = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ESP);
    if (o->raw4 < 0 || set_int(o->raw4, IPPROTO_IP, IP_HDRINCL, 1) < 0) {
        goto fail;
    }
    o->raw6 = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ESP);
    if (o->raw6 < 0 || set_int(o->raw6, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) < 0 ||
        set_int(o->raw6, IPPROTO_IPV6, IPV6_RECVTCLASS, 1) < 0 ||
        set_int(o->raw6, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1) < 0) {
        goto fail;
    }
    grow_rcvbuf(o->raw4);
    grow_rcvbuf(o->raw6);
    if (ipsecif_posix_loop_add(loop, o->raw4, POLLIN, on_raw4, o) < 0 ||
        ipsecif_posix_loop_add(loop, o->raw6, POLLIN, on_raw6, o) < 0) {
        goto fail;
    }
    return 0;
fail:
    saved = errno;
    ipsecif_posix_outer_close(o);
    errno = saved;
    return -1;
}

void ipsecif_posix_outer_set_ctx(struct ipsecif_posix_outer *o, struct ipsecif_ctx *ctx)
{
    o->ctx = ctx;
}

void ipsecif_posix_outer_close(struct ipsecif_posix_outer *o)
{
    size_t i;

    if (o->loop == NULL) {
        return;
    }
    close_fd(o, &o->raw4);
    close_fd(o, &o->raw6);
    close_fd(o, &o->ah4);
    close_fd(o, &o->ah6);
    close_fd(o, &o->send4);
    close_fd(o, &o->send6);
    for (i = 0; i < o->natt_cap; i++) {
        close_fd(o, &o->natt[i].fd);
    }
    free(o->natt);
    free(o->buf4);
    free(o->buf6);
    free(o->bufah);
    o->natt = NULL;
    o->natt_cap = 0;
    o->buf4 = NULL;
    o->buf6 = NULL;
    o->bufah = NULL;
    o->loop = NULL;
}

static struct ipsecif_posix_natt *natt_find(struct ipsecif_posix_outer *o, uint8_t family,
                                            uint16_t port)
{
    size_t i;

    for (i = 0; i < o->natt_cap; i++) {
        if (o->natt[i].fd >= 0 && o->natt[i].family == family && o->natt[i].port == port) {
            return &o->natt[i];
        }
    }
    return NULL;
}

static int natt_socket(uint8_t family, uint16_t port, uint32_t mark)
{
    int fd;
    int saved;

    if (family == IPSECIF_AF_INET) {
        struct sockaddr_in sin;

        fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return -1;
        }
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        if (set_int(fd, IPPROTO_IP, IP_PKTINFO, 1) < 0 ||
            set_int(fd, IPPROTO_IP, IP_RECVTOS, 1) < 0 ||
            set_int(fd, IPPROTO_IP, IP_RECVTTL, 1) < 0 ||
            bind(fd, (const struct sockaddr *)&sin, sizeof(sin)) < 0) {
            goto fail;
        }
    } else {
        struct sockaddr_in6 sin6;

        fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return -1;
        }
        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(port);
        if (set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) < 0 ||
            set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) < 0 ||
            set_int(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1) < 0 ||
            set_int(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1) < 0 ||
            bind(fd, (const struct sockaddr *)&sin6, sizeof(sin6)) < 0) {
            goto fail;
        }
    }
    if (set_mark(fd, mark) < 0) {
        goto fail;
    }
    grow_rcvbuf(fd);
    return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int ipsecif_posix_outer_natt_ref(struct ipsecif_posix_outer *o, uint8_t family, uint16_t port)
{
    struct ipsecif_posix_natt *s;
    size_t i;

    if ((family != IPSECIF_AF_INET && family != IPSECIF_AF_INET6) || port == 0) {
        errno = EINVAL;
        return -1;
    }
    s = natt_find(o, family, port);
    if (s != NULL) {
        s->refs++;
        return 0;
    }
    for (i = 0; i < o->natt_cap && o->natt[i].fd >= 0; i++) {
    }
    if (i == o->natt_cap) {
        errno = ENOSPC;
        return -1;
    }
    s = &o->natt[i];
    s->fd = natt_socket(family, port, o->mark);
    if (s->fd < 0) {
        return -1;
    }
    if (ipsecif_posix_loop_add(o->loop, s->fd, POLLIN, on_natt, s) < 0) {
        int saved = errno;

        close(s->fd);
        s->fd = -1;
        errno = saved;
        return -1;
    }
    s->family = family;
    s->port = port;
    s->refs = 1;
    ipsecif_posix_logf(IPSECIF_LOG_INFO, "NAT-T socket open: %s port %u",
                       family == IPSECIF_AF_INET ? "IPv4" : "IPv6", port);
    return 0;
}

void ipsecif_posix_outer_natt_unref(struct ipsecif_posix_outer *o, uint8_t family, uint16_t port)
{
    struct ipsecif_posix_natt *s = natt_find(o, family, port);

    if (s == NULL || s->refs == 0) {
        return;
    }
    if (--s->refs == 0) {
        close_fd(o, &s->fd);
        ipsecif_posix_logf(IPSECIF_LOG_INFO, "NAT-T socket closed: %s port %u",
                           family == IPSECIF_AF_INET ? "IPv4" : "IPv6", port);
    }
}

/* Build the sender's control data: source address, traffic class, hop limit. */
static size_t put_cmsgs(uint8_t *room, size_t cap, const struct ipsecif_outer_meta *meta)
{
    struct msghdr m;
    struct cmsghdr *c;
    int tos = meta->tos;
    int ttl = meta->ttl != 0 ? meta->ttl : 64;

    memset(room, 0, cap);
    memset(&m, 0, sizeof(m));
    m.msg_control = room;
    if (meta->family == IPSECIF_AF_INET) {
        struct in_pktinfo pi;

        m.msg_controllen = CMSG_SPACE(sizeof(pi)) + CMSG_SPACE(sizeof(int));
#ifdef __linux__
        m.msg_controllen += CMSG_SPACE(sizeof(int));
#endif
        memset(&pi, 0, sizeof(pi));
        memcpy(&pi.ipi_spec_dst, meta->src.bytes, 4);
        c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_TTL;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &ttl, sizeof(int));
#ifdef __linux__
        /* The outer ECN bits matter (RFC 6040); not every system takes IP_TOS here. */
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_TOS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &tos, sizeof(int));
#endif
    } else {
        struct in6_pktinfo pi;

        m.msg_controllen = CMSG_SPACE(sizeof(pi)) + 2 * CMSG_SPACE(sizeof(int));
        memset(&pi, 0, sizeof(pi));
        memcpy(&pi.ipi6_addr, meta->src.bytes, 16);
        c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_TCLASS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &tos, sizeof(int));
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_HOPLIMIT;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &ttl, sizeof(int));
    }
    return m.msg_controllen;
}

int ipsecif_posix_outer_send(struct ipsecif_posix_outer *o, const struct ipsecif_outer_meta *meta,
                             const struct ipsecif_buf *pkt)
{
    union {
        struct cmsghdr align;
        uint8_t b[CMSG_ROOM];
    } cbuf;
    struct sockaddr_storage to;
    socklen_t tolen;
    struct iovec iov;
    struct msghdr m;
    const uint8_t *data = ipsecif_buf_data(pkt);
    size_t skip;
    int fd;

    memset(&to, 0, sizeof(to));
    memset(&m, 0, sizeof(m));
    if (meta->family == IPSECIF_AF_INET) {
        struct sockaddr_in sin;

        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(meta->dport);
        memcpy(&sin.sin_addr, meta->dst.bytes, 4);
        memcpy(&to, &sin, sizeof(sin));
        tolen = sizeof(sin);
    } else if (meta->family == IPSECIF_AF_INET6) {
        struct sockaddr_in6 sin6;

        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(meta->dport);
        memcpy(&sin6.sin6_addr, meta->dst.bytes, 16);
        memcpy(&to, &sin6, sizeof(sin6));
        tolen = sizeof(sin6);
    } else {
        goto fail;
    }
    if (meta->sport != 0) {
        const struct ipsecif_posix_natt *s = natt_find(o, meta->family, meta->sport);

        if (s == NULL) {
            goto fail;
        }
        fd = s->fd;
        skip = meta->esp_off; /* the socket writes the IP and UDP headers */
        m.msg_control = cbuf.b;
        m.msg_controllen = put_cmsgs(cbuf.b, sizeof(cbuf.b), meta);
    } else if (meta->family == IPSECIF_AF_INET) {
        fd = o->raw4;
        skip = 0; /* IP_HDRINCL: the packet goes out as built */
        ((struct sockaddr_in *)&to)->sin_port = 0;
    } else {
        fd = o->raw6;
        skip = meta->esp_off;
        ((struct sockaddr_in6 *)&to)->sin6_port = 0;
        m.msg_control = cbuf.b;
        m.msg_controllen = put_cmsgs(cbuf.b, sizeof(cbuf.b), meta);
    }
    if (fd < 0 || skip > pkt->len) {
        goto fail;
    }
    iov.iov_base = (void *)(data + skip);
    iov.iov_len = pkt->len - skip;
    m.msg_name = &to;
    m.msg_namelen = tolen;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (sendmsg(fd, &m, MSG_DONTWAIT) < 0) {
        if (ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
            ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "outer send: %s", strerror(errno));
        }
        goto fail;
    }
    o->stats.tx_packets++;
    return IPSECIF_OK;
fail:
    o->stats.tx_errors++;
    return IPSECIF_ERR_PORT;
}

/* ---- Host mode ---- */

int ipsecif_posix_outer_host_open(struct ipsecif_posix_outer *o)
{
    int saved;

    if (o->loop == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (o->bufah != NULL) {
        return 0;
    }
    o->bufah = malloc(IPSECIF_POSIX_RXBUF);
    if (o->bufah == NULL) {
        errno = ENOMEM;
        return -1;
    }
    o->ah4 = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_AH);
    if (o->ah4 < 0 || set_mark(o->ah4, o->mark) < 0) {
        goto fail;
    }
    o->ah6 = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_AH);
    if (o->ah6 < 0 || set_int(o->ah6, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) < 0 ||
        set_int(o->ah6, IPPROTO_IPV6, IPV6_RECVTCLASS, 1) < 0 ||
        set_int(o->ah6, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1) < 0 || set_mark(o->ah6, o->mark) < 0) {
        goto fail;
    }
    /* IPPROTO_RAW: the header is the caller's (IP_HDRINCL implied), and
     * the socket receives nothing. */
    o->send4 = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
    if (o->send4 < 0 || set_int(o->send4, SOL_SOCKET, SO_BROADCAST, 1) < 0 ||
        set_mark(o->send4, o->mark) < 0) {
        goto fail;
    }
    o->send6 = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
    if (o->send6 < 0 || set_mark(o->send6, o->mark) < 0) {
        goto fail;
    }
    grow_rcvbuf(o->ah4);
    grow_rcvbuf(o->ah6);
    if (ipsecif_posix_loop_add(o->loop, o->ah4, POLLIN, on_ah4, o) < 0 ||
        ipsecif_posix_loop_add(o->loop, o->ah6, POLLIN, on_ah6, o) < 0) {
        goto fail;
    }
    return 0;
fail:
    saved = errno;
    close_fd(o, &o->ah4);
    close_fd(o, &o->ah6);
    close_fd(o, &o->send4);
    close_fd(o, &o->send6);
    free(o->bufah);
    o->bufah = NULL;
    errno = saved;
    return -1;
}

int ipsecif_posix_outer_set_mark(struct ipsecif_posix_outer *o, uint32_t mark)
{
    int fds[6];
    size_t i;

    fds[0] = o->raw4;
    fds[1] = o->raw6;
    fds[2] = o->ah4;
    fds[3] = o->ah6;
    fds[4] = o->send4;
    fds[5] = o->send6;
    for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (set_mark(fds[i], mark) < 0) {
            return -1;
        }
    }
    for (i = 0; i < o->natt_cap; i++) {
        if (set_mark(o->natt[i].fd, mark) < 0) {
            return -1;
        }
    }
    o->mark = mark;
    return 0;
}

int ipsecif_posix_outer_send_ip(struct ipsecif_posix_outer *o, const struct ipsecif_buf *pkt,
                                const struct ipsecif_addr *dst)
{
    struct sockaddr_storage to;
    socklen_t tolen;
    int saved = EINVAL;
    int fd;

    memset(&to, 0, sizeof(to));
    if (dst->family == IPSECIF_AF_INET) {
        struct sockaddr_in sin;

        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        memcpy(&sin.sin_addr, dst->bytes, 4);
        memcpy(&to, &sin, sizeof(sin));
        tolen = sizeof(sin);
        fd = o->send4;
    } else if (dst->family == IPSECIF_AF_INET6) {
        struct sockaddr_in6 sin6;

        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        memcpy(&sin6.sin6_addr, dst->bytes, 16);
        memcpy(&to, &sin6, sizeof(sin6));
        tolen = sizeof(sin6);
        fd = o->send6;
    } else {
        goto fail;
    }
    if (fd < 0) {
        goto fail;
    }
    if (sendto(fd, ipsecif_buf_data(pkt), pkt->len, MSG_DONTWAIT, (const struct sockaddr *)&to,
               tolen) < 0) {
        saved = errno;
        if (ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
            ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "host send: %s", strerror(errno));
        }
        goto fail;
    }
    o->stats.ip_tx_packets++;
    return IPSECIF_OK;
fail:
    o->stats.ip_tx_errors++;
    errno = saved;
    return IPSECIF_ERR_PORT;
}

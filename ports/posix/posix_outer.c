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
#ifdef __linux__
#include <linux/filter.h>
#endif
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ipsecif_posix.h"

/* Control data room for the ancillary items one packet carries. */
#define CMSG_ROOM 1024

/* The send queue: packets copied into one arena, sent by the flush. */

/* Control data room of a queued packet: what put_cmsgs() writes plus a
 * UDP_SEGMENT item. */
#define TX_CMSG_ROOM 128

/* Largest UDP payload one UDP GSO send carries, and its segments at most
 * (the kernel's UDP_MAX_SEGMENTS). */
#define GSO_BYTES 65000u
#define GSO_SEGS 64u

struct txent {
    int fd;                          /* -1 once taken into a flush */
    struct ipsecif_posix_natt *natt; /* ESP in UDP: its socket, else NULL */
    uint32_t off;                    /* where the bytes are in the arena */
    uint32_t len;
    socklen_t tolen;
    size_t clen;
    struct sockaddr_storage to;
    union {
        size_t align; /* as struct cmsghdr (its cmsg_len), which has a flexible tail */
        uint8_t b[TX_CMSG_ROOM];
    } cbuf;
};

struct ipsecif_posix_txq {
    struct txent ent[IPSECIF_POSIX_TXQ];
    size_t n;
    size_t used;
    uint8_t *arena;
    struct mmsghdr mm[IPSECIF_POSIX_TXQ];
    struct iovec iov[IPSECIF_POSIX_TXQ];
    unsigned segs[IPSECIF_POSIX_TXQ]; /* packets in each message */
};

static void flush_hook(void *arg);

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
    IPSECIF_POSIX_COUNT(o->stats.rx_packets, 1);
    if (rc != IPSECIF_OK) {
        IPSECIF_POSIX_COUNT(o->stats.rx_rejected, 1);
        if (ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
            ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "outer packet dropped: %s", ipsecif_strerror(rc));
        }
    }
}

/* The receive vector: IPSECIF_POSIX_RXVEC datagrams per recvmmsg(), one
 * for all sockets (each batch is handed to the library before the next
 * call, from whichever socket). */
struct rxslot {
    union {
        size_t align; /* as struct cmsghdr */
        uint8_t b[CMSG_ROOM];
    } cbuf;
    struct sockaddr_storage from;
};

struct ipsecif_posix_rxvec {
    struct mmsghdr mm[IPSECIF_POSIX_RXVEC];
    struct iovec iov[IPSECIF_POSIX_RXVEC];
    struct rxslot slot[IPSECIF_POSIX_RXVEC];
    /* What goes to the library: the datagrams kept (not truncated, with a
     * usable meta), n of them, each with its meta and then its verdict. */
    struct ipsecif_buf pkt[IPSECIF_POSIX_RXVEC];
    struct ipsecif_buf *pp[IPSECIF_POSIX_RXVEC];
    struct ipsecif_outer_meta meta[IPSECIF_POSIX_RXVEC];
    int res[IPSECIF_POSIX_RXVEC];
    uint8_t first[IPSECIF_POSIX_RXVEC]; /* raw IPv6 AH: the header after IPv6's */
    size_t n;
    uint8_t buf[IPSECIF_POSIX_RXVEC][IPSECIF_POSIX_RXBUF];
};

/* Read a bounded number per wakeup so that one busy socket cannot starve the others. */
#define RX_BATCH 64

static uint8_t *rx_buf(struct ipsecif_posix_outer *o, int k)
{
    return o->rx->buf[k];
}

/* One recvmmsg() into the vector, data after head bytes of each buffer.
 * Returns the number of datagrams, 0 when there is nothing to read now. */
static int recv_batch(struct ipsecif_posix_outer *o, int fd, size_t head, bool control)
{
    struct ipsecif_posix_rxvec *v = o->rx;
    int k;
    int n;

    for (k = 0; k < IPSECIF_POSIX_RXVEC; k++) {
        struct msghdr *m = &v->mm[k].msg_hdr;

        v->iov[k].iov_base = v->buf[k] + head;
        v->iov[k].iov_len = IPSECIF_POSIX_RXBUF - head;
        memset(m, 0, sizeof(*m));
        m->msg_name = &v->slot[k].from;
        m->msg_namelen = sizeof(v->slot[k].from);
        m->msg_iov = &v->iov[k];
        m->msg_iovlen = 1;
        if (control) {
            m->msg_control = v->slot[k].cbuf.b;
            m->msg_controllen = sizeof(v->slot[k].cbuf.b);
        }
        v->mm[k].msg_len = 0;
    }
    for (;;) {
        n = recvmmsg(fd, v->mm, IPSECIF_POSIX_RXVEC, MSG_DONTWAIT, NULL);
        if (n >= 0 || errno != EINTR) {
            break;
        }
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            IPSECIF_POSIX_COUNT(o->stats.rx_errors, 1);
        }
        return 0;
    }
    if (n > 0) {
        IPSECIF_POSIX_COUNT(o->stats.rx_batches, 1);
    }
    return n;
}

/* A received datagram that did not fit its buffer or its control room. */
static bool truncated(struct ipsecif_posix_outer *o, int k)
{
    if ((o->rx->mm[k].msg_hdr.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        IPSECIF_POSIX_COUNT(o->stats.rx_truncated, 1);
        return true;
    }
    return false;
}

/* After a batch went to the library: what it produced goes out. */
static void batch_done(struct ipsecif_posix_outer *o)
{
    if (o->burst_end != NULL) {
        o->burst_end(o->burst_arg);
    }
    ipsecif_posix_outer_flush(o);
}

/* Datagram k of the vector kept for the library, data from off. */
static void rx_keep(struct ipsecif_posix_outer *o, int k, size_t off)
{
    struct ipsecif_posix_rxvec *v = o->rx;
    struct ipsecif_buf *b = &v->pkt[v->n];

    b->base = rx_buf(o, k);
    b->cap = IPSECIF_POSIX_RXBUF;
    b->off = off;
    b->len = v->mm[k].msg_len;
    v->pp[v->n] = b;
    v->n++;
}

/* The kept datagrams to the library: with metas (payload only) or whole
 * packets, in slices of o->batch or one call each. */
static void rx_submit(struct ipsecif_posix_outer *o, bool metas, uint8_t proto)
{
    struct ipsecif_posix_rxvec *v = o->rx;
    size_t i, k, m;

    if (o->ctx == NULL) {
        v->n = 0;
        return;
    }
    if (o->lock != NULL) {
        pthread_mutex_lock(o->lock);
    }
    for (i = 0; i < v->n; i += m) {
        m = v->n - i < o->batch ? v->n - i : o->batch;
        if (proto == IPSECIF_IPPROTO_AH) {
            m = 1; /* host AH: nothing to share */
            v->res[i] = ipsecif_input_payload(o->ctx, &v->meta[i], v->first[i], v->pp[i],
                                              ipsecif_posix_now_ms());
        } else if (m == 1 && !metas) {
            v->res[i] = ipsecif_input(o->ctx, v->pp[i], ipsecif_posix_now_ms());
        } else if (m == 1 && proto != 0) {
            v->res[i] =
                ipsecif_input_payload(o->ctx, &v->meta[i], proto, v->pp[i], ipsecif_posix_now_ms());
        } else if (m == 1) {
            v->res[i] = ipsecif_input_esp(o->ctx, &v->meta[i], v->pp[i], ipsecif_posix_now_ms());
        } else if (!metas) {
            (void)ipsecif_input_batch(o->ctx, v->pp + i, m, ipsecif_posix_now_ms(), v->res + i);
        } else {
            (void)ipsecif_input_esp_batch(o->ctx, v->meta + i, v->pp + i, m, ipsecif_posix_now_ms(),
                                          v->res + i);
        }
        IPSECIF_POSIX_COUNT(o->stats.rx_calls, 1);
        for (k = i; k < i + m; k++) {
            count_input(o, v->res[k]);
        }
    }
    if (o->lock != NULL) {
        pthread_mutex_unlock(o->lock);
    }
    v->n = 0;
}

/* Receive whole IPv4 packets (raw ESP or AH) for ipsecif_input(). */
static void recv_whole(struct ipsecif_posix_outer *o, int fd)
{
    int total = 0;

    while (total < RX_BATCH) {
        int n = recv_batch(o, fd, 0, false);
        int k;

        if (n == 0) {
            break;
        }
        total += n;
        o->rx->n = 0;
        for (k = 0; k < n; k++) {
            if (!truncated(o, k)) {
                rx_keep(o, k, 0);
            }
        }
        rx_submit(o, false, 0);
        batch_done(o);
        if (n < IPSECIF_POSIX_RXVEC) {
            break;
        }
    }
}

static void on_raw4(void *arg, int fd, short revents)
{
    struct ipsecif_posix_outer *o = arg;

    (void)revents;
    recv_whole(o, fd);
}

static void on_ah4(void *arg, int fd, short revents)
{
    struct ipsecif_posix_outer *o = arg;

    (void)revents;
    recv_whole(o, fd);
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

/*
 * An IPv6 raw socket gives the extension headers in front of AH apart, as
 * ancillary data in the order they came (hop-by-hop options, destination
 * options, routing header: RFC 3542), and AH's ICV covers them: put them
 * back in front of the payload in that order, each naming the next, the
 * last naming AH, and let *proto name the first. The payload moves back
 * when the headroom is short. false: more headers than a packet may have
 * in front of AH, a length byte that disagrees with the size, or no room.
 */
#define V6_EXT_MAX 4
static bool put_v6_ext(struct msghdr *m, struct ipsecif_buf *pkt, uint8_t *proto)
{
    const uint8_t *hdr[V6_EXT_MAX];
    size_t len[V6_EXT_MAX];
    uint8_t nh[V6_EXT_MAX];
    size_t total = 0, need, n = 0, i;
    struct cmsghdr *c;
    uint8_t next = IPSECIF_IPPROTO_AH;
    uint8_t *p;

    for (c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
        size_t l;
        uint8_t type;

        if (c->cmsg_level != IPPROTO_IPV6 || c->cmsg_len < CMSG_LEN(0)) {
            continue;
        }
        if (c->cmsg_type == IPV6_HOPOPTS) {
            type = IPSECIF_IPPROTO_HOPOPTS;
        } else if (c->cmsg_type == IPV6_DSTOPTS) {
            type = IPSECIF_IPPROTO_DSTOPTS;
        } else if (c->cmsg_type == IPV6_RTHDR) {
            type = IPSECIF_IPPROTO_ROUTING;
        } else {
            continue;
        }
        l = c->cmsg_len - CMSG_LEN(0);
        /* Its length byte counts 8-byte units past the first 8. */
        if (n == V6_EXT_MAX || l < 8 || l != ((size_t)CMSG_DATA(c)[1] + 1) * 8) {
            return false;
        }
        hdr[n] = CMSG_DATA(c);
        len[n] = l;
        nh[n] = type;
        total += l;
        n++;
    }
    if (n == 0) {
        return true;
    }
    /* The library then puts the 40-byte IPv6 header in front. */
    need = total + 40 + 8;
    if (pkt->off < need) {
        if (need + pkt->len > pkt->cap) {
            return false;
        }
        memmove(pkt->base + need, pkt->base + pkt->off, pkt->len);
        pkt->off = need;
    }
    p = ipsecif_buf_push(pkt, total);
    if (p == NULL) {
        return false;
    }
    /* Written from the last back, so each learns the header behind it. */
    p += total;
    for (i = n; i-- > 0;) {
        p -= len[i];
        memcpy(p, hdr[i], len[i]);
        p[0] = next;
        next = nh[i];
    }
    *proto = next;
    return true;
}

/* Keep one payload-only datagram of the vector with its meta for the
 * library; one whose sender or local address is not known is counted. */
static void keep_payload(struct ipsecif_posix_outer *o, int k, uint8_t family, uint16_t local_port,
                         uint8_t proto)
{
    const struct sockaddr_storage *from = &o->rx->slot[k].from;
    struct ipsecif_outer_meta *meta = &o->rx->meta[o->rx->n];

    memset(meta, 0, sizeof(*meta));
    meta->family = family;
    if (family == IPSECIF_AF_INET && from->ss_family == AF_INET) {
        struct sockaddr_in sin;

        memcpy(&sin, from, sizeof(sin));
        meta->src.family = IPSECIF_AF_INET;
        memcpy(meta->src.bytes, &sin.sin_addr, 4);
        meta->sport = ntohs(sin.sin_port);
    } else if (family == IPSECIF_AF_INET6 && from->ss_family == AF_INET6) {
        struct sockaddr_in6 sin6;

        memcpy(&sin6, from, sizeof(sin6));
        meta->src.family = IPSECIF_AF_INET6;
        memcpy(meta->src.bytes, &sin6.sin6_addr, 16);
        meta->sport = ntohs(sin6.sin6_port);
    } else {
        IPSECIF_POSIX_COUNT(o->stats.rx_errors, 1);
        return;
    }
    if (!parse_cmsgs(&o->rx->mm[k].msg_hdr, meta) || meta->dst.family != family) {
        IPSECIF_POSIX_COUNT(o->stats.rx_errors, 1);
        return;
    }
    if (local_port == 0) {
        meta->sport = 0; /* raw socket: no ports */
    } else {
        meta->dport = local_port;
    }
    rx_keep(o, k, IPSECIF_POSIX_RXHEAD);
    /* Raw IPv6 AH: the extension headers in front go back (first names
     * them: hop-by-hop is protocol 0). */
    o->rx->first[o->rx->n - 1] = proto;
    if (proto == IPSECIF_IPPROTO_AH && family == IPSECIF_AF_INET6 &&
        !put_v6_ext(&o->rx->mm[k].msg_hdr, &o->rx->pkt[o->rx->n - 1],
                    &o->rx->first[o->rx->n - 1])) {
        o->rx->n--;
        IPSECIF_POSIX_COUNT(o->stats.rx_errors, 1);
    }
}

/* Receive payload-only packets (raw IPv6, UDP) after IPSECIF_POSIX_RXHEAD
 * bytes of headroom (where the library puts back the headers for host
 * traffic) and pass them with their meta: ESP (raw IPv6) and ESP in UDP
 * (NAT-T, proto 0) to ipsecif_input_esp_batch() (or one by one to
 * ipsecif_input_payload() and ipsecif_input_esp()), AH (raw IPv6, host
 * mode) to ipsecif_input_payload(). */
static void recv_payloads(struct ipsecif_posix_outer *o, int fd, uint8_t family,
                          uint16_t local_port, uint8_t proto)
{
    int total = 0;

    while (total < RX_BATCH) {
        int n = recv_batch(o, fd, IPSECIF_POSIX_RXHEAD, true);
        int k;

        if (n == 0) {
            break;
        }
        total += n;
        o->rx->n = 0;
        for (k = 0; k < n; k++) {
            if (!truncated(o, k)) {
                keep_payload(o, k, family, local_port, proto);
            }
        }
        rx_submit(o, true, proto);
        batch_done(o);
        if (n < IPSECIF_POSIX_RXVEC) {
            break;
        }
    }
}

static void on_raw6(void *arg, int fd, short revents)
{
    struct ipsecif_posix_outer *o = arg;

    (void)revents;
    recv_payloads(o, fd, IPSECIF_AF_INET6, 0, IPSECIF_IPPROTO_ESP);
}

static void on_ah6(void *arg, int fd, short revents)
{
    struct ipsecif_posix_outer *o = arg;

    (void)revents;
    recv_payloads(o, fd, IPSECIF_AF_INET6, 0, IPSECIF_IPPROTO_AH);
}

static void on_natt(void *arg, int fd, short revents)
{
    struct ipsecif_posix_natt *s = arg;

    (void)revents;
    recv_payloads(s->outer, fd, s->family, s->port, 0);
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
    o->udp_gso = true;
    o->batch = IPSECIF_BATCH_MAX;
    o->rx = malloc(sizeof(*o->rx));
    o->tx = calloc(1, sizeof(*o->tx));
    if (o->tx != NULL) {
        o->tx->arena = malloc(IPSECIF_POSIX_TXQ_BYTES);
    }
    if (natt_cap > 0) {
        o->natt = calloc(natt_cap, sizeof(*o->natt));
    }
    if (o->rx == NULL || o->tx == NULL || o->tx->arena == NULL ||
        (natt_cap > 0 && o->natt == NULL)) {
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
        ipsecif_posix_loop_add(loop, o->raw6, POLLIN, on_raw6, o) < 0 ||
        ipsecif_posix_loop_add_flush(loop, flush_hook, o) < 0) {
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
    ipsecif_posix_loop_del_flush(o->loop, flush_hook, o);
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
    free(o->rx);
    if (o->tx != NULL) {
        free(o->tx->arena);
    }
    free(o->tx);
    o->natt = NULL;
    o->natt_cap = 0;
    o->rx = NULL;
    o->tx = NULL;
    o->host_open = false;
    o->loop = NULL;
}

static struct ipsecif_posix_natt *natt_find(struct ipsecif_posix_outer *o, uint8_t family,
                                            uint16_t port)
{
    size_t i;

    if (o->natt_home != NULL) {
        o = o->natt_home;
    }
    for (i = 0; i < o->natt_cap; i++) {
        if (o->natt[i].fd >= 0 && o->natt[i].refs > 0 && o->natt[i].family == family &&
            o->natt[i].port == port) {
            return &o->natt[i];
        }
    }
    return NULL;
}

/* UDP_SEGMENT (Linux 4.18): asking for the socket's value tells whether the kernel has it. */
static bool udp_gso_supported(int fd)
{
#ifdef UDP_SEGMENT
    int v = 0;
    socklen_t len = sizeof(v);

    return getsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &v, &len) == 0;
#else
    (void)fd;
    return false;
#endif
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
    s->gso = udp_gso_supported(s->fd);
    s->gso_bad = 0;
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
        if (o->natt_defer) {
            /* Not found nor read any more; closed by ipsecif_posix_outer_natt_reap(). */
            ipsecif_posix_loop_del(o->loop, s->fd);
            return;
        }
        close_fd(o, &s->fd);
        ipsecif_posix_logf(IPSECIF_LOG_INFO, "NAT-T socket closed: %s port %u",
                           family == IPSECIF_AF_INET ? "IPv4" : "IPv6", port);
    }
}

void ipsecif_posix_outer_natt_reap(struct ipsecif_posix_outer *o)
{
    size_t i;

    for (i = 0; i < o->natt_cap; i++) {
        struct ipsecif_posix_natt *s = &o->natt[i];

        if (s->fd >= 0 && s->refs == 0) {
            close(s->fd);
            s->fd = -1;
            ipsecif_posix_logf(IPSECIF_LOG_INFO, "NAT-T socket closed: %s port %u",
                               s->family == IPSECIF_AF_INET ? "IPv4" : "IPv6", s->port);
        }
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

/* ---- Send queue ---- */

static void flush_hook(void *arg)
{
    ipsecif_posix_outer_flush(arg);
}

void ipsecif_posix_outer_set_udp_gso(struct ipsecif_posix_outer *o, bool on)
{
    o->udp_gso = on;
}

int ipsecif_posix_outer_set_batch(struct ipsecif_posix_outer *o, size_t n)
{
    if (n < 1 || n > IPSECIF_BATCH_MAX) {
        errno = EINVAL;
        return -1;
    }
    o->batch = n;
    return 0;
}

void ipsecif_posix_outer_set_burst_hook(struct ipsecif_posix_outer *o, ipsecif_posix_idle_fn fn,
                                        void *arg)
{
    o->burst_end = fn;
    o->burst_arg = arg;
}

int ipsecif_posix_outer_send(struct ipsecif_posix_outer *o, const struct ipsecif_outer_meta *meta,
                             const struct ipsecif_buf *pkt)
{
    struct ipsecif_posix_txq *q = o->tx;
    struct txent *e;
    const uint8_t *data = ipsecif_buf_data(pkt);
    size_t skip;
    size_t len;

    if (q == NULL) {
        goto fail;
    }
    if (q->n == IPSECIF_POSIX_TXQ) {
        ipsecif_posix_outer_flush(o);
    }
    e = &q->ent[q->n];
    memset(&e->to, 0, sizeof(e->to));
    e->natt = NULL;
    e->clen = 0;
    if (meta->family == IPSECIF_AF_INET) {
        struct sockaddr_in sin;

        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(meta->dport);
        memcpy(&sin.sin_addr, meta->dst.bytes, 4);
        memcpy(&e->to, &sin, sizeof(sin));
        e->tolen = sizeof(sin);
    } else if (meta->family == IPSECIF_AF_INET6) {
        struct sockaddr_in6 sin6;

        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(meta->dport);
        memcpy(&sin6.sin6_addr, meta->dst.bytes, 16);
        memcpy(&e->to, &sin6, sizeof(sin6));
        e->tolen = sizeof(sin6);
    } else {
        goto fail;
    }
    if (meta->sport != 0) {
        struct ipsecif_posix_natt *s = natt_find(o, meta->family, meta->sport);

        if (s == NULL) {
            goto fail;
        }
        e->fd = s->fd;
        e->natt = s;
        skip = meta->esp_off; /* the socket writes the IP and UDP headers */
        e->clen = put_cmsgs(e->cbuf.b, sizeof(e->cbuf.b), meta);
    } else if (meta->family == IPSECIF_AF_INET) {
        e->fd = o->raw4;
        skip = 0; /* IP_HDRINCL: the packet goes out as built */
        ((struct sockaddr_in *)&e->to)->sin_port = 0;
    } else {
        e->fd = o->raw6;
        skip = meta->esp_off;
        ((struct sockaddr_in6 *)&e->to)->sin6_port = 0;
        e->clen = put_cmsgs(e->cbuf.b, sizeof(e->cbuf.b), meta);
    }
    if (e->fd < 0 || skip > pkt->len) {
        goto fail;
    }
    len = pkt->len - skip;
    if (len > IPSECIF_POSIX_TXQ_BYTES) {
        goto fail;
    }
    if (len > IPSECIF_POSIX_TXQ_BYTES - q->used) {
        /* Keep this entry's fields: the flush only reads entries below n. */
        struct txent tmp = *e;

        ipsecif_posix_outer_flush(o);
        e = &q->ent[q->n];
        *e = tmp;
    }
    memcpy(q->arena + q->used, data + skip, len);
    e->off = (uint32_t)q->used;
    e->len = (uint32_t)len;
    q->used += len;
    q->n++;
    return IPSECIF_OK;
fail:
    IPSECIF_POSIX_COUNT(o->stats.tx_errors, 1);
    return IPSECIF_ERR_PORT;
}

/* Whether queue entry e may join the UDP GSO message that head starts
 * (segs packets, bytes so far, last the previous packet). */
static bool gso_joins(const struct ipsecif_posix_outer *o, const struct txent *head,
                      const struct txent *last, const struct txent *e, unsigned segs, size_t bytes)
{
    const struct ipsecif_posix_natt *s = head->natt;

    return s != NULL && o->udp_gso && s->gso && e->natt == s && segs < GSO_SEGS &&
           bytes + e->len <= GSO_BYTES && last->len == head->len && e->len <= head->len &&
           e->len > 0 && (s->gso_bad == 0 || head->len < s->gso_bad) && e->tolen == head->tolen &&
           memcmp(&e->to, &head->to, head->tolen) == 0 && e->clen == head->clen &&
           memcmp(e->cbuf.b, head->cbuf.b, head->clen) == 0;
}

/* Append UDP_SEGMENT (segment size: the head packet's length) to a message
 * whose control data is the head entry's. */
static void add_udp_segment(struct txent *head, struct msghdr *m)
{
#ifdef UDP_SEGMENT
    struct cmsghdr *c = (struct cmsghdr *)(void *)(head->cbuf.b + head->clen);
    uint16_t size = (uint16_t)head->len;

    memset(c, 0, CMSG_SPACE(sizeof(size)));
    c->cmsg_level = IPPROTO_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(size));
    memcpy(CMSG_DATA(c), &size, sizeof(size));
    m->msg_control = head->cbuf.b;
    m->msg_controllen = head->clen + CMSG_SPACE(sizeof(size));
#else
    (void)head;
    (void)m;
#endif
}

static void count_sent(struct ipsecif_posix_outer *o, unsigned segs)
{
    IPSECIF_POSIX_COUNT(o->stats.tx_packets, segs);
    if (segs > 1) {
        IPSECIF_POSIX_COUNT(o->stats.tx_gso, 1);
        IPSECIF_POSIX_COUNT(o->stats.tx_gso_segs, segs);
    }
}

static void send_failed(struct ipsecif_posix_outer *o, unsigned segs, int err)
{
    IPSECIF_POSIX_COUNT(o->stats.tx_errors, segs);
    if (ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
        ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "outer send: %s", strerror(err));
    }
}

/* A UDP GSO message the kernel refused: send its packets one by one, and
 * stop asking for GSO on the socket (for this size and larger only, when
 * the size was the reason: EINVAL, segments over the path MTU). */
static void gso_fallback(struct ipsecif_posix_outer *o, int fd, struct txent *head,
                         struct msghdr *gm, unsigned segs, int err)
{
    unsigned k;

    IPSECIF_POSIX_COUNT(o->stats.tx_gso_off, 1);
    if (err == EINVAL) {
        head->natt->gso_bad = head->len;
    } else {
        head->natt->gso = false;
    }
    ipsecif_posix_logf(IPSECIF_LOG_INFO, "UDP GSO refused (%s), sending %u packets one by one",
                       strerror(err), segs);
    for (k = 0; k < segs; k++) {
        struct msghdr m = *gm;

        m.msg_iov = gm->msg_iov + k;
        m.msg_iovlen = 1;
        m.msg_controllen = head->clen;
        if (m.msg_controllen == 0) {
            m.msg_control = NULL;
        }
        if (sendmsg(fd, &m, MSG_DONTWAIT) < 0) {
            send_failed(o, 1, errno);
        } else {
            count_sent(o, 1);
        }
    }
}

/* Send the nm messages built in q->mm on fd; heads[k] is message k's first entry. */
static void send_vec(struct ipsecif_posix_outer *o, int fd, struct txent **heads, unsigned nm)
{
    struct ipsecif_posix_txq *q = o->tx;
    unsigned i = 0;

    while (i < nm) {
        int r = sendmmsg(fd, q->mm + i, nm - i, MSG_DONTWAIT);
        int err = errno;

        IPSECIF_POSIX_COUNT(o->stats.tx_batches, 1);
        if (r > 0) {
            unsigned k;

            for (k = i; k < i + (unsigned)r; k++) {
                count_sent(o, q->segs[k]);
            }
            i += (unsigned)r;
            continue;
        }
        if (r < 0 && err == EINTR) {
            continue;
        }
        /* Message i failed (r < 0; 0 is not expected, treated alike). */
        if (q->segs[i] > 1 && (err == EINVAL || err == EIO || err == ENOPROTOOPT ||
                               err == EOPNOTSUPP || err == ENOTSUP)) {
            gso_fallback(o, fd, heads[i], &q->mm[i].msg_hdr, q->segs[i], err);
        } else {
            send_failed(o, q->segs[i], r < 0 ? err : EIO);
        }
        i++;
    }
}

void ipsecif_posix_outer_flush(struct ipsecif_posix_outer *o)
{
    struct ipsecif_posix_txq *q = o->tx;
    struct txent *heads[IPSECIF_POSIX_TXQ];
    size_t i;

    if (q == NULL || q->n == 0) {
        return;
    }
    /* One sendmmsg() per socket, its packets in queue order. */
    for (i = 0; i < q->n; i++) {
        int fd = q->ent[i].fd;
        struct txent *last = NULL;
        size_t bytes = 0;
        unsigned nm = 0;
        unsigned ni = 0;
        size_t j;

        if (fd < 0) {
            continue;
        }
        for (j = i; j < q->n; j++) {
            struct txent *e = &q->ent[j];

            if (e->fd != fd) {
                continue;
            }
            e->fd = -1;
            q->iov[ni].iov_base = q->arena + e->off;
            q->iov[ni].iov_len = e->len;
            if (nm > 0 && gso_joins(o, heads[nm - 1], last, e, q->segs[nm - 1], bytes)) {
                struct msghdr *m = &q->mm[nm - 1].msg_hdr;

                if (m->msg_iovlen == 1) {
                    add_udp_segment(heads[nm - 1], m);
                }
                m->msg_iovlen++;
                q->segs[nm - 1]++;
            } else {
                struct msghdr *m = &q->mm[nm].msg_hdr;

                memset(&q->mm[nm], 0, sizeof(q->mm[nm]));
                m->msg_name = &e->to;
                m->msg_namelen = e->tolen;
                m->msg_iov = &q->iov[ni];
                m->msg_iovlen = 1;
                if (e->clen > 0) {
                    m->msg_control = e->cbuf.b;
                    m->msg_controllen = e->clen;
                }
                heads[nm] = e;
                q->segs[nm] = 1;
                nm++;
                bytes = 0;
            }
            bytes += e->len;
            last = e;
            ni++;
        }
        send_vec(o, fd, heads, nm);
    }
    q->n = 0;
    q->used = 0;
}

/* ---- Sharing among threads ---- */

void ipsecif_posix_outer_set_shared(struct ipsecif_posix_outer *o, pthread_mutex_t *lock,
                                    struct ipsecif_posix_outer *home)
{
    o->lock = lock;
    o->natt_home = home != o ? home : NULL;
}

void ipsecif_posix_outer_stats_add(struct ipsecif_posix_outer_stats *sum,
                                   const struct ipsecif_posix_outer_stats *s)
{
    sum->rx_packets += IPSECIF_POSIX_READ(s->rx_packets);
    sum->rx_truncated += IPSECIF_POSIX_READ(s->rx_truncated);
    sum->rx_errors += IPSECIF_POSIX_READ(s->rx_errors);
    sum->rx_rejected += IPSECIF_POSIX_READ(s->rx_rejected);
    sum->tx_packets += IPSECIF_POSIX_READ(s->tx_packets);
    sum->tx_errors += IPSECIF_POSIX_READ(s->tx_errors);
    sum->ip_tx_packets += IPSECIF_POSIX_READ(s->ip_tx_packets);
    sum->ip_tx_errors += IPSECIF_POSIX_READ(s->ip_tx_errors);
    sum->rx_batches += IPSECIF_POSIX_READ(s->rx_batches);
    sum->rx_calls += IPSECIF_POSIX_READ(s->rx_calls);
    sum->tx_batches += IPSECIF_POSIX_READ(s->tx_batches);
    sum->tx_gso += IPSECIF_POSIX_READ(s->tx_gso);
    sum->tx_gso_segs += IPSECIF_POSIX_READ(s->tx_gso_segs);
    sum->tx_gso_off += IPSECIF_POSIX_READ(s->tx_gso_off);
}

/* Fibonacci hashing: SPIs a key manager counts up spread as well as random ones. */
#define STEER_MUL 0x9e3779b1u
#define STEER_SHIFT 16

#ifdef __linux__
/* A raw IPv4 socket's filter sees the IP header first, a raw IPv6 socket's
 * the ESP header (the kernel has taken the IPv6 header and its extension
 * headers off): X is the SPI's offset, then one program for both. It keeps
 * the packets of share i, and those too short for an SPI when i is 0. */
static int attach_steer(int fd, bool v4, uint32_t n, uint32_t i)
{
    const uint32_t keep = 0xffffffffu;
    struct sock_filter prog_ins[] = {
        v4 ? (struct sock_filter)BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0)  /* X = IP header length */
           : (struct sock_filter)BPF_STMT(BPF_LDX | BPF_W | BPF_IMM, 0), /* X = 0 */
        BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),                           /* A = packet length */
        BPF_STMT(BPF_ALU | BPF_SUB | BPF_X, 0),                          /* A -= X */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 4, 1, 0),                    /* room for an SPI? */
        BPF_STMT(BPF_RET | BPF_K, i == 0 ? keep : 0),
        BPF_STMT(BPF_LD | BPF_W | BPF_IND, 0), /* A = SPI */
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, STEER_MUL),
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, STEER_SHIFT),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, i, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, keep),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog prog;

    prog.filter = prog_ins;
    prog.len = (unsigned short)(sizeof(prog_ins) / sizeof(prog_ins[0]));
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}
#endif

int ipsecif_posix_outer_steer(struct ipsecif_posix_outer *o, uint32_t n, uint32_t i)
{
    if (n > 1 && i >= n) {
        errno = EINVAL;
        return -1;
    }
#ifdef __linux__
    if (n <= 1) {
        int dummy = 0;

        (void)setsockopt(o->raw4, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof(dummy));
        (void)setsockopt(o->raw6, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof(dummy));
    } else if (attach_steer(o->raw4, true, n, i) < 0 || attach_steer(o->raw6, false, n, i) < 0) {
        return -1;
    }
    o->steer_n = n;
    o->steer_i = i;
    return 0;
#else
    if (n <= 1) {
        return 0;
    }
    errno = ENOTSUP;
    return -1;
#endif
}

/* ---- Host mode ---- */

int ipsecif_posix_outer_host_open(struct ipsecif_posix_outer *o)
{
    int saved;

    if (o->loop == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (o->host_open) {
        return 0;
    }
    o->ah4 = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_AH);
    if (o->ah4 < 0 || set_mark(o->ah4, o->mark) < 0) {
        goto fail;
    }
    o->ah6 = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_AH);
    /* AH covers the extension headers in front of it: have them too. */
    if (o->ah6 < 0 || set_int(o->ah6, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) < 0 ||
        set_int(o->ah6, IPPROTO_IPV6, IPV6_RECVTCLASS, 1) < 0 ||
        set_int(o->ah6, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1) < 0 ||
        set_int(o->ah6, IPPROTO_IPV6, IPV6_RECVHOPOPTS, 1) < 0 ||
        set_int(o->ah6, IPPROTO_IPV6, IPV6_RECVRTHDR, 1) < 0 ||
        set_int(o->ah6, IPPROTO_IPV6, IPV6_RECVDSTOPTS, 1) < 0 || set_mark(o->ah6, o->mark) < 0) {
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
    o->host_open = true;
    return 0;
fail:
    saved = errno;
    close_fd(o, &o->ah4);
    close_fd(o, &o->ah6);
    close_fd(o, &o->send4);
    close_fd(o, &o->send6);
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
    IPSECIF_POSIX_COUNT(o->stats.ip_tx_packets, 1);
    return IPSECIF_OK;
fail:
    IPSECIF_POSIX_COUNT(o->stats.ip_tx_errors, 1);
    errno = saved;
    return IPSECIF_ERR_PORT;
}

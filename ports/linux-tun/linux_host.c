/* Linux port, host mode: policy routing into one TUN device, whose packets
 * go through ipsecif_host_output(); rules and routes over rtnetlink. */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/fib_rules.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipsecif_linux_host.h"
#include "linux_nl.h"

/* Packets read per wakeup before other descriptors get a turn. */
#define HOST_BATCH 64

/* One fragment or ICMP error: room in front for the ICMP headers. */
#define OUT_HEAD 64
#define OUT_BYTES (OUT_HEAD + 65536)

/* The most an ICMP error quotes of the packet it answers (RFC 4443 2.4). */
#define QUOTE_MAX (1280 - 48)

/* Below these no path MTU is asked: every path carries them. */
#define SAFE4 576u
#define SAFE6 1280u

/* ---- rtnetlink ---- */

/* ---- Rules ---- */

struct rule {
    uint8_t family;  /* AF_INET, AF_INET6 */
    uint32_t pref;   /* offset from IPSECIF_LINUX_HOST_PREF */
    bool iif;        /* iif ipsech0 */
    bool mark;       /* fwmark IPSECIF_LINUX_HOST_MARK */
    uint8_t dst[16]; /* to dst/dst_len, when dst_len > 0 */
    uint8_t dst_len;
    bool host_table; /* lookup IPSECIF_LINUX_HOST_MARK, else main */
};

static const struct rule rules[] = {
    {AF_INET, 0, true, false, {0}, 0, false},
    {AF_INET, 1, false, true, {0}, 0, false},
    {AF_INET, 2, false, false, {169, 254}, 16, false},
    {AF_INET, 2, false, false, {224}, 4, false},
    {AF_INET, 2, false, false, {255, 255, 255, 255}, 32, false},
    {AF_INET, 3, false, false, {0}, 0, true},
    {AF_INET6, 0, true, false, {0}, 0, false},
    {AF_INET6, 1, false, true, {0}, 0, false},
    {AF_INET6, 2, false, false, {0xfe, 0x80}, 10, false},
    {AF_INET6, 2, false, false, {0xff}, 8, false},
    {AF_INET6, 3, false, false, {0}, 0, true},
};

#define NRULES (sizeof(rules) / sizeof(rules[0]))

static int rule_op(uint16_t type, const struct rule *ru)
{
    struct fib_rule_hdr frh;
    struct ipsecif_linux_nlreq r;

    memset(&frh, 0, sizeof(frh));
    frh.family = ru->family;
    frh.dst_len = ru->dst_len;
    frh.action = FR_ACT_TO_TBL;
    frh.table = ru->host_table ? RT_TABLE_UNSPEC : RT_TABLE_MAIN;
    ipsecif_linux_nl_begin(&r, type, type == RTM_NEWRULE ? NLM_F_CREATE | NLM_F_EXCL : 0, &frh,
                           sizeof(frh));
    ipsecif_linux_nl_attr32(&r, FRA_PRIORITY, IPSECIF_LINUX_HOST_PREF + ru->pref);
    if (ru->host_table) {
        ipsecif_linux_nl_attr32(&r, FRA_TABLE, IPSECIF_LINUX_HOST_MARK);
    }
    if (ru->iif) {
        ipsecif_linux_nl_attr(&r, FRA_IIFNAME, IPSECIF_LINUX_HOST_DEV,
                              sizeof(IPSECIF_LINUX_HOST_DEV));
    }
    if (ru->mark) {
        ipsecif_linux_nl_attr32(&r, FRA_FWMARK, IPSECIF_LINUX_HOST_MARK);
        ipsecif_linux_nl_attr32(&r, FRA_FWMASK, 0xffffffffu);
    }
    if (ru->dst_len > 0) {
        ipsecif_linux_nl_attr(&r, FRA_DST, ru->dst, ru->family == AF_INET ? 4 : 16);
    }
    return ipsecif_linux_nl_talk(&r);
}

/* ---- Routes in the host table ---- */

static int route_op(uint16_t type, uint8_t family, bool blackhole, unsigned ifindex)
{
    struct rtmsg rtm;
    struct ipsecif_linux_nlreq r;

    memset(&rtm, 0, sizeof(rtm));
    rtm.rtm_family = family;
    rtm.rtm_table = RT_TABLE_UNSPEC;
    rtm.rtm_protocol = RTPROT_STATIC;
    rtm.rtm_type = blackhole ? RTN_BLACKHOLE : RTN_UNICAST;
    if (type == RTM_DELROUTE) {
        rtm.rtm_scope = RT_SCOPE_NOWHERE;
    } else {
        rtm.rtm_scope = blackhole || family == AF_INET6 ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
    }
    ipsecif_linux_nl_begin(&r, type, type == RTM_NEWROUTE ? NLM_F_CREATE | NLM_F_EXCL : 0, &rtm,
                           sizeof(rtm));
    ipsecif_linux_nl_attr32(&r, RTA_TABLE, IPSECIF_LINUX_HOST_MARK);
    ipsecif_linux_nl_attr32(&r, RTA_PRIORITY,
                            blackhole ? IPSECIF_LINUX_HOST_BLACKHOLE_METRIC
                                      : IPSECIF_LINUX_HOST_METRIC);
    if (!blackhole) {
        ipsecif_linux_nl_attr32(&r, RTA_OIF, ifindex);
    }
    return ipsecif_linux_nl_talk(&r);
}

static const char *fam_name(uint8_t family)
{
    return family == AF_INET ? "IPv4" : "IPv6";
}

/* Routes first, then the rules, the one into the host table last: until
 * then host traffic takes the main table as before. */
static int install(unsigned ifindex)
{
    static const uint8_t fams[] = {AF_INET, AF_INET6};
    size_t i;
    size_t k;

    for (i = 0; i < 2; i++) {
        if (route_op(RTM_NEWROUTE, fams[i], true, 0) < 0 && errno != EEXIST) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: %s blackhole route: %s", fam_name(fams[i]),
                               strerror(errno));
            return -1;
        }
        if (route_op(RTM_NEWROUTE, fams[i], false, ifindex) < 0 && errno != EEXIST) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: %s route into %s: %s", fam_name(fams[i]),
                               IPSECIF_LINUX_HOST_DEV, strerror(errno));
            return -1;
        }
    }
    for (k = 0; k < NRULES; k++) {
        if (rule_op(RTM_NEWRULE, &rules[k]) < 0 && errno != EEXIST) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: %s rule %u: %s", fam_name(rules[k].family),
                               IPSECIF_LINUX_HOST_PREF + rules[k].pref, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* The reverse of install(); what is not there is no error. */
static void uninstall(unsigned ifindex)
{
    static const uint8_t fams[] = {AF_INET, AF_INET6};
    size_t i;
    size_t k;

    for (k = NRULES; k-- > 0;) {
        /* Twice or more if an older run left copies. */
        for (i = 0; i < 8 && rule_op(RTM_DELRULE, &rules[k]) == 0; i++) {
        }
    }
    for (i = 0; i < 2; i++) {
        if (ifindex != 0) {
            (void)route_op(RTM_DELROUTE, fams[i], false, ifindex);
        }
        (void)route_op(RTM_DELROUTE, fams[i], true, 0);
    }
}

/* ---- The device ---- */

static void write_sysctl(const char *fmt, const char *value)
{
    char path[128];
    int fd;

    snprintf(path, sizeof(path), fmt, IPSECIF_LINUX_HOST_DEV);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_WARN, "host: %s: %s", path, strerror(errno));
        return;
    }
    if (write(fd, value, strlen(value)) != (ssize_t)strlen(value)) {
        ipsecif_posix_logf(IPSECIF_LOG_WARN, "host: %s: %s", path, strerror(errno));
    }
    close(fd);
}

static int read_sysctl(const char *path)
{
    char b[16];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return -1;
    }
    n = read(fd, b, sizeof(b) - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    b[n] = '\0';
    return b[0] >= '0' && b[0] <= '9' ? b[0] - '0' : -1;
}

static int dev_ioctl(unsigned long req, struct ifreq *ifr)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc;
    int saved;

    if (fd < 0) {
        return -1;
    }
    memcpy(ifr->ifr_name, IPSECIF_LINUX_HOST_DEV, sizeof(IPSECIF_LINUX_HOST_DEV));
    rc = ioctl(fd, req, ifr);
    saved = errno;
    close(fd);
    errno = saved;
    return rc < 0 ? -1 : 0;
}

/* MTU, queue, up. */
static int dev_setup(void)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_mtu = IPSECIF_LINUX_HOST_MTU;
    if (dev_ioctl(SIOCSIFMTU, &ifr) < 0) {
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_qlen = IPSECIF_LINUX_TXQLEN;
    (void)dev_ioctl(SIOCSIFTXQLEN, &ifr);
    memset(&ifr, 0, sizeof(ifr));
    if (dev_ioctl(SIOCGIFFLAGS, &ifr) < 0) {
        return -1;
    }
    ifr.ifr_flags |= IFF_UP;
    return dev_ioctl(SIOCSIFFLAGS, &ifr);
}

/*
 * Packets the kernel sends on ipsech0 itself rather than routes there: an
 * IPv6 link-local source or a multicast or broadcast destination (rule
 * 102 routes every other such packet to main). They belong to the device,
 * not to the wire (router solicitations, MLD of ipsech0's own address), so
 * they are not passed on.
 */
static bool device_scoped(const uint8_t *p, size_t n)
{
    if (n >= 20 && (p[0] >> 4) == 4) {
        return (p[16] & 0xf0) == 0xe0 ||
               (p[16] == 255 && p[17] == 255 && p[18] == 255 && p[19] == 255);
    }
    if (n >= 40 && (p[0] >> 4) == 6) {
        return (p[8] == 0xfe && (p[9] & 0xc0) == 0x80) || p[24] == 0xff;
    }
    return false;
}

/* ---- Path MTU ---- */

static size_t pmtu_slot(const struct ipsecif_addr *a)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < 16; i++) {
        h = (h ^ a->bytes[i]) * 16777619u;
    }
    return (h ^ (h >> 16)) % IPSECIF_LINUX_HOST_PMTU_CACHE;
}

/* What the kernel knows of the path to dst in the main table (the mark's):
 * a UDP socket connected there tells it. 0 when it cannot say. */
static uint32_t pmtu_ask(struct ipsecif_linux_host *h, const struct ipsecif_addr *dst)
{
    int v = 0;
    socklen_t vl = sizeof(v);

    h->stats.pmtu_lookups++;
    if (dst->family == IPSECIF_AF_INET && h->mtu4 >= 0) {
        struct sockaddr_in sin;

        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(9);
        memcpy(&sin.sin_addr, dst->bytes, 4);
        if (connect(h->mtu4, (const struct sockaddr *)&sin, sizeof(sin)) < 0 ||
            getsockopt(h->mtu4, IPPROTO_IP, IP_MTU, &v, &vl) < 0) {
            return 0;
        }
    } else if (dst->family == IPSECIF_AF_INET6 && h->mtu6 >= 0) {
        struct sockaddr_in6 sin6;

        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(9);
        memcpy(&sin6.sin6_addr, dst->bytes, 16);
        if (connect(h->mtu6, (const struct sockaddr *)&sin6, sizeof(sin6)) < 0 ||
            getsockopt(h->mtu6, IPPROTO_IPV6, IPV6_MTU, &v, &vl) < 0) {
            return 0;
        }
    } else {
        return 0;
    }
    return v > 0 ? (uint32_t)v : 0;
}

static uint32_t pmtu_get(struct ipsecif_linux_host *h, const struct ipsecif_addr *dst, uint64_t now,
                         bool fresh)
{
    struct ipsecif_linux_host_pmtu *e = &h->pmtu[pmtu_slot(dst)];

    if (fresh || e->dst.family != dst->family || memcmp(e->dst.bytes, dst->bytes, 16) != 0 ||
        now >= e->until) {
        e->dst = *dst;
        e->mtu = pmtu_ask(h, dst);
        e->until = now + IPSECIF_LINUX_HOST_PMTU_TTL_MS;
    }
    return e->mtu;
}

/* ---- Sending what the library made ---- */

/* The start of the packet as it came from the device, for an ICMP error. */
struct orig {
    uint8_t b[QUOTE_MAX];
    size_t n;   /* bytes kept (0: none) */
    size_t len; /* the packet's length */
    bool whole; /* the host sent it whole (not reassembled here) */
};

static uint32_t next_id(struct ipsecif_linux_host *h)
{
    uint32_t id = 0;

    if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t)sizeof(id)) {
        id = ++h->frag_id * 2654435761u;
    }
    return id;
}

/*
 * A packet that IPsec made too big for the path and the host would rather
 * hear of than have cut (see send_cut()): an ICMP error for the host, from
 * the packet's destination, written to the device. false when no error is
 * allowed or the MTU it would name is below the family's minimum.
 */
static bool send_toobig(struct ipsecif_linux_host *h, const struct orig *o, uint32_t pmtu,
                        size_t out_len)
{
    struct ipsecif_addr from;
    struct ipsecif_buf e;
    size_t grow = out_len > o->len ? out_len - o->len : 0;
    uint32_t mtu = pmtu > grow ? pmtu - (uint32_t)grow : 0;
    bool v4;

    if (o->n == 0) {
        return false;
    }
    v4 = (o->b[0] >> 4) == 4;
    if ((v4 && mtu < 68) || (!v4 && mtu < SAFE6)) {
        return false;
    }
    memset(&from, 0, sizeof(from));
    from.family = v4 ? IPSECIF_AF_INET : IPSECIF_AF_INET6;
    memcpy(from.bytes, v4 ? o->b + 16 : o->b + 24, v4 ? 4 : 16);
    memcpy(h->out + OUT_HEAD, o->b, o->n);
    e.base = h->out;
    e.cap = OUT_BYTES;
    e.off = OUT_HEAD;
    e.len = o->n;
    if (ipsecif_frag_toobig(&e, &from, mtu) != IPSECIF_OK) {
        return false;
    }
    h->stats.out_toobig++;
    ipsecif_linux_host_deliver(h, &e);
    if (ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
        ipsecif_posix_logf(IPSECIF_LOG_DEBUG,
                           "host: %zu bytes after IPsec, path MTU %u: told the host MTU %u",
                           out_len, pmtu, mtu);
    }
    return true;
}

/* Clear DF of an IPv4 header (its checksum follows). */
static void clear_df(struct ipsecif_buf *b)
{
    uint8_t *p = ipsecif_buf_data(b);
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    uint32_t s = 0;
    size_t i;

    p[6] &= (uint8_t)~0x40;
    p[10] = 0;
    p[11] = 0;
    for (i = 0; i + 1 < ihl; i += 2) {
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    while (s >> 16) {
        s = (s & 0xffff) + (s >> 16);
    }
    s = ~s & 0xffff;
    p[10] = (uint8_t)(s >> 8);
    p[11] = (uint8_t)s;
}

static void send_cut(struct ipsecif_linux_host *h, struct ipsecif_buf *b,
                     const struct ipsecif_addr *dst, uint32_t mtu, const struct orig *o)
{
    struct ipsecif_frag f;
    bool v6 = o->n > 0 && (o->b[0] >> 4) == 6;
    bool df = o->n > 0 && !v6 && (o->b[6] & 0x40) != 0;
    int rc;

    /*
     * What the host sent whole with DF (IPv4) or as an IPv6 packet that
     * fitted its MTU gets the error, as Linux's own IPsec does it: the
     * sender learns the smaller MTU (TCP sends smaller segments, others
     * fragment before IPsec). What it had fragmented, it wanted cut.
     */
    if (o->whole && (df || v6) && send_toobig(h, o, mtu, b->len)) {
        return;
    }
    rc = ipsecif_frag_start(&f, b, mtu, next_id(h));
    if (rc == IPSECIF_ERR_TOOBIG) {
        /* An IPv4 outer header with DF copied from inner IPv6 (which has
         * no DF), or from an inner packet that gets no ICMP error: the
         * outer header is ours and may be cut (RFC 4213 section 3.2). */
        if (df) {
            h->stats.out_frag_errors++;
            return;
        }
        clear_df(b);
        rc = ipsecif_frag_start(&f, b, mtu, next_id(h));
    }
    if (rc != IPSECIF_OK) {
        h->stats.out_frag_errors++;
        if (ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
            ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "host: %zu bytes, path MTU %u: not cut: %s",
                               b->len, mtu, ipsecif_strerror(rc));
        }
        return;
    }
    h->stats.out_fragmented++;
    for (;;) {
        struct ipsecif_buf piece = {h->out, OUT_BYTES, OUT_HEAD, 0};

        if (ipsecif_frag_next(&f, &piece) != IPSECIF_OK) {
            break;
        }
        if (ipsecif_posix_outer_send_ip(&h->lx->outer, &piece, dst) == IPSECIF_OK) {
            h->stats.out_fragments++;
        }
    }
}

/* Send b to dst: whole when the path takes it, else cut or refused. */
static void send_out(struct ipsecif_linux_host *h, struct ipsecif_buf *b,
                     const struct ipsecif_addr *dst, const struct orig *o, uint64_t now)
{
    uint32_t mtu = 0;
    const uint8_t *p = ipsecif_buf_data(b);
    bool v4 = b->len > 0 && (p[0] >> 4) == 4;

    if (b->len > (v4 ? SAFE4 : SAFE6)) {
        mtu = pmtu_get(h, dst, now, false);
    }
    if (mtu != 0 && b->len > mtu) {
        send_cut(h, b, dst, mtu, o);
        return;
    }
    if (ipsecif_posix_outer_send_ip(&h->lx->outer, b, dst) == IPSECIF_OK || errno != EMSGSIZE) {
        return;
    }
    /* The route's MTU fell since it was asked. */
    h->stats.pmtu_emsgsize++;
    mtu = pmtu_get(h, dst, now, true);
    if (mtu != 0 && b->len > mtu) {
        send_cut(h, b, dst, mtu, o);
    }
}

static void on_read(void *arg, int fd, short revents)
{
    struct ipsecif_linux_host *h = arg;
    int i;

    (void)revents;
    /* Datagrams whose time ran out free their slots even when no further
     * fragment comes (nothing to do while none is pending). */
    ipsecif_reass_expire(h->reass, ipsecif_posix_now_ms());
    for (i = 0; i < HOST_BATCH && h->lx->ctx != NULL; i++) {
        struct ipsecif_host_result res;
        struct ipsecif_buf b;
        struct orig orig;
        uint64_t frags;
        uint64_t now;
        ssize_t n =
            read(fd, h->buf + IPSECIF_LINUX_HOST_HEADROOM,
                 sizeof(h->buf) - IPSECIF_LINUX_HOST_HEADROOM - IPSECIF_LINUX_HOST_TAILROOM);
        int rc;

        if (n <= 0) {
            return;
        }
        h->stats.rx_packets++;
        if (device_scoped(h->buf + IPSECIF_LINUX_HOST_HEADROOM, (size_t)n)) {
            h->stats.rx_dropped++;
            continue;
        }
        b.base = h->buf;
        b.cap = sizeof(h->buf);
        b.off = IPSECIF_LINUX_HOST_HEADROOM;
        b.len = (size_t)n;
        now = ipsecif_posix_now_ms();
        frags = ipsecif_reass_stats_get(h->reass)->fragments;
        rc = ipsecif_reass_input(h->reass, &b, now);
        if (ipsecif_reass_stats_get(h->reass)->fragments != frags) {
            h->stats.frag_in++;
        }
        if (rc == IPSECIF_ERR_QUEUED) {
            continue;
        }
        if (rc != IPSECIF_OK) {
            h->stats.frag_dropped++;
            h->stats.rx_dropped++;
            if (ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
                ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "host: fragment dropped: %s",
                                   ipsecif_strerror(rc));
            }
            continue;
        }
        if (b.base != h->buf) {
            h->stats.reassembled++;
        }
        /* Kept for an ICMP error, should IPsec make it too big for a DF path. */
        orig.n = 0;
        orig.len = b.len;
        orig.whole = b.base == h->buf;
        if (b.len > 256) {
            orig.n = b.len < sizeof(orig.b) ? b.len : sizeof(orig.b);
            memcpy(orig.b, ipsecif_buf_data(&b), orig.n);
        }
        rc = ipsecif_host_output(h->lx->ctx, &b, now, &res);
        if (rc != IPSECIF_OK) {
            h->stats.rx_dropped++;
            if (ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
                ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "host: output dropped: %s",
                                   ipsecif_strerror(rc));
            }
            continue;
        }
        send_out(h, &b, &res.dst, &orig, now);
    }
}

/* Open (or take over) the persistent device. */
static int dev_open(struct ipsecif_linux_host *h)
{
    struct ifreq ifr;
    int saved;

    h->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (h->fd < 0) {
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    memcpy(ifr.ifr_name, IPSECIF_LINUX_HOST_DEV, sizeof(IPSECIF_LINUX_HOST_DEV));
    if (ioctl(h->fd, TUNSETIFF, &ifr) < 0 || ioctl(h->fd, TUNGETIFF, &ifr) < 0) {
        goto fail;
    }
    h->adopted = (ifr.ifr_flags & IFF_PERSIST) != 0;
    if (!h->adopted && ioctl(h->fd, TUNSETPERSIST, 1) < 0) {
        goto fail;
    }
    return 0;
fail:
    saved = errno;
    close(h->fd);
    h->fd = -1;
    errno = saved;
    return -1;
}

static int mtu_socket(int family)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int mark = (int)IPSECIF_LINUX_HOST_MARK;

    /* The mark: the path of the daemon's own packets, not ipsech0's. */
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The reassembler, the output buffer and the path MTU sockets. */
static int frag_open(struct ipsecif_linux_host *h)
{
    struct ipsecif_reass_config c;
    size_t n;

    memset(&c, 0, sizeof(c));
    c.slots = IPSECIF_LINUX_HOST_REASS_SLOTS;
    c.frags = 256;
    c.datagram_max = IPSECIF_REASS_DATAGRAM_MAX;
    c.bytes_max = IPSECIF_LINUX_HOST_REASS_BYTES;
    c.headroom = IPSECIF_LINUX_HOST_HEADROOM;
    c.tailroom = IPSECIF_LINUX_HOST_TAILROOM;
    n = ipsecif_reass_mem_size(&c);
    h->reass_mem = malloc(n);
    h->out = malloc(OUT_BYTES);
    if (h->reass_mem == NULL || h->out == NULL ||
        ipsecif_reass_init(&h->reass, h->reass_mem, n, &c) != IPSECIF_OK) {
        errno = ENOMEM;
        return -1;
    }
    h->mtu4 = mtu_socket(AF_INET);
    h->mtu6 = mtu_socket(AF_INET6);
    if (h->mtu4 < 0 || h->mtu6 < 0) {
        /* Without them packets go whole, and the kernel's EMSGSIZE drops
         * what is too big. */
        ipsecif_posix_logf(IPSECIF_LOG_WARN, "host: path MTU socket: %s", strerror(errno));
    }
    (void)getrandom(&h->frag_id, sizeof(h->frag_id), GRND_NONBLOCK);
    return 0;
}

static void frag_close(struct ipsecif_linux_host *h)
{
    if (h->mtu4 >= 0) {
        close(h->mtu4);
    }
    if (h->mtu6 >= 0) {
        close(h->mtu6);
    }
    h->mtu4 = -1;
    h->mtu6 = -1;
    free(h->reass_mem);
    free(h->out);
    h->reass_mem = NULL;
    h->reass = NULL;
    h->out = NULL;
}

const struct ipsecif_reass_stats *ipsecif_linux_host_reass_stats(const struct ipsecif_linux_host *h)
{
    return ipsecif_reass_stats_get(h->reass);
}

int ipsecif_linux_host_open(struct ipsecif_linux_host *h, struct ipsecif_linux *lx)
{
    unsigned idx;

    memset(h, 0, sizeof(*h));
    h->lx = lx;
    h->fd = -1;
    h->mtu4 = -1;
    h->mtu6 = -1;
    if (lx->nworkers > 1) {
        /* Host packets are read and written by the main thread alone. */
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: not with worker threads");
        errno = EINVAL;
        return -1;
    }
    if (ipsecif_posix_outer_host_open(&lx->outer) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: AH and raw send sockets: %s", strerror(errno));
        return -1;
    }
    if (ipsecif_posix_outer_set_mark(&lx->outer, IPSECIF_LINUX_HOST_MARK) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: SO_MARK: %s", strerror(errno));
        return -1;
    }
    if (dev_open(h) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: TUN device %s: %s", IPSECIF_LINUX_HOST_DEV,
                           errno == EBUSY ? "in use by another process" : strerror(errno));
        /* Not ours (another daemon's, perhaps): close must not touch it. */
        h->lx = NULL;
        return -1;
    }
    if (frag_open(h) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: reassembly and path MTU: %s", strerror(errno));
        return -1;
    }
    /* Routes of a device without a process stay in use (they drop); IPv6
     * on; what the daemon writes back has sources the main table routes
     * elsewhere, so no reverse-path filter here. */
    write_sysctl("/proc/sys/net/ipv4/conf/%s/ignore_routes_with_linkdown", "0\n");
    write_sysctl("/proc/sys/net/ipv6/conf/%s/ignore_routes_with_linkdown", "0\n");
    write_sysctl("/proc/sys/net/ipv6/conf/%s/disable_ipv6", "0\n");
    write_sysctl("/proc/sys/net/ipv4/conf/%s/rp_filter", "0\n");
    if (read_sysctl("/proc/sys/net/ipv4/conf/all/rp_filter") == 1) {
        ipsecif_posix_logf(IPSECIF_LOG_WARN,
                           "host: net.ipv4.conf.all.rp_filter is 1 (strict): every source now "
                           "routes into %s, so packets arriving elsewhere fail the check; use "
                           "2 (loose) or 0",
                           IPSECIF_LINUX_HOST_DEV);
    }
    if (dev_setup() < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: %s: MTU or up: %s", IPSECIF_LINUX_HOST_DEV,
                           strerror(errno));
        return -1;
    }
    idx = if_nametoindex(IPSECIF_LINUX_HOST_DEV);
    if (idx == 0 || install(idx) < 0) {
        return -1;
    }
    if (ipsecif_posix_loop_add(&lx->loop, h->fd, POLLIN, on_read, h) < 0) {
        return -1;
    }
    ipsecif_posix_logf(IPSECIF_LOG_INFO,
                       "host: %s %s (MTU %u), rules %u..%u, table 0x%x, mark 0x%x",
                       IPSECIF_LINUX_HOST_DEV, h->adopted ? "taken over" : "created",
                       IPSECIF_LINUX_HOST_MTU, IPSECIF_LINUX_HOST_PREF, IPSECIF_LINUX_HOST_PREF + 3,
                       IPSECIF_LINUX_HOST_MARK, IPSECIF_LINUX_HOST_MARK);
    return 0;
}

void ipsecif_linux_host_close(struct ipsecif_linux_host *h, bool remove)
{
    if (h->lx == NULL) {
        return;
    }
    if (remove) {
        uninstall(if_nametoindex(IPSECIF_LINUX_HOST_DEV));
    }
    if (h->fd >= 0) {
        ipsecif_posix_loop_del(&h->lx->loop, h->fd);
        if (remove && ioctl(h->fd, TUNSETPERSIST, 0) < 0) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: %s: TUNSETPERSIST: %s",
                               IPSECIF_LINUX_HOST_DEV, strerror(errno));
        }
        close(h->fd);
        h->fd = -1;
    }
    frag_close(h);
    ipsecif_posix_logf(IPSECIF_LOG_INFO, "host: %s",
                       remove ? "rules, routes and " IPSECIF_LINUX_HOST_DEV " removed"
                              : "rules, routes and " IPSECIF_LINUX_HOST_DEV
                                " stay: host traffic is dropped (fail closed)");
    h->lx = NULL;
}

void ipsecif_linux_host_deliver(struct ipsecif_linux_host *h, const struct ipsecif_buf *pkt)
{
    if (h->fd < 0) {
        return;
    }
    if (write(h->fd, ipsecif_buf_data(pkt), pkt->len) != (ssize_t)pkt->len) {
        h->stats.tx_errors++;
        return;
    }
    h->stats.tx_packets++;
}

/* ---- The namespace's addresses ---- */

static void read_addrs(struct ipsecif_linux_host *h)
{
    struct ifaddrs *list;
    struct ifaddrs *i;

    h->naddrs = 0;
    if (getifaddrs(&list) < 0) {
        return;
    }
    for (i = list; i != NULL && h->naddrs < IPSECIF_LINUX_HOST_ADDRS; i = i->ifa_next) {
        struct ipsecif_addr *a = &h->addrs[h->naddrs];

        if (i->ifa_addr == NULL) {
            continue;
        }
        memset(a, 0, sizeof(*a));
        if (i->ifa_addr->sa_family == AF_INET) {
            struct sockaddr_in sin;

            memcpy(&sin, i->ifa_addr, sizeof(sin));
            a->family = IPSECIF_AF_INET;
            memcpy(a->bytes, &sin.sin_addr, 4);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            struct sockaddr_in6 sin6;

            memcpy(&sin6, i->ifa_addr, sizeof(sin6));
            a->family = IPSECIF_AF_INET6;
            memcpy(a->bytes, &sin6.sin6_addr, 16);
        } else {
            continue;
        }
        h->naddrs++;
    }
    freeifaddrs(list);
}

static bool known(const struct ipsecif_linux_host *h, const struct ipsecif_addr *a)
{
    size_t i;

    for (i = 0; i < h->naddrs; i++) {
        if (h->addrs[i].family == a->family &&
            memcmp(h->addrs[i].bytes, a->bytes, a->family == IPSECIF_AF_INET ? 4 : 16) == 0) {
            return true;
        }
    }
    return false;
}

bool ipsecif_linux_host_local_addr(struct ipsecif_linux_host *h, const struct ipsecif_addr *a)
{
    uint64_t now;

    if (known(h, a)) {
        return true;
    }
    now = ipsecif_posix_now_ms();
    if (h->addrs_read != 0 && now - h->addrs_read < 1000) {
        return false;
    }
    read_addrs(h);
    h->addrs_read = now != 0 ? now : 1;
    return known(h, a);
}

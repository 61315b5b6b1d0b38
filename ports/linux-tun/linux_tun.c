/* Linux port: TUN devices, addresses over rtnetlink, one timerfd. */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ipsecif_linux.h"
#include "linux_nl.h"

/* Inner packets read per wakeup from one device before others get a turn. */
#define TUN_BATCH 64

static void workers_free(struct ipsecif_linux *lx);
static void worker_burst_end(void *arg);
static int queues_open(struct ipsecif_linux *lx, struct ipsecif_linux_tun *t);
static void queues_close(struct ipsecif_linux *lx, struct ipsecif_linux_tun *t);
static void workers_sync(struct ipsecif_linux *lx, bool wait);
static void natt_release(struct ipsecif_linux *lx, uint8_t family, uint16_t port);

/* The worker whose thread this is; NULL on the main thread. */
static __thread struct ipsecif_linux_worker *cur_wk;

/* Around a library call: a worker takes the context's lock (the main
 * thread holds it whenever it runs callbacks). */
static void lib_enter(const struct ipsecif_linux_tun *t)
{
    if (t->wk != NULL) {
        pthread_mutex_lock(&t->lx->lock);
    }
}

static void lib_leave(const struct ipsecif_linux_tun *t)
{
    if (t->wk != NULL) {
        pthread_mutex_unlock(&t->lx->lock);
    }
}

/* The calling thread's queue of device t (t as the library knows it). */
static struct ipsecif_linux_tun *here(struct ipsecif_linux *lx, struct ipsecif_linux_tun *t)
{
    struct ipsecif_linux_tun *q;

    if (cur_wk == NULL || lx == NULL || t == NULL || t < lx->tuns || t >= lx->tuns + lx->ntuns) {
        return t;
    }
    q = &cur_wk->tuns[t - lx->tuns];
    /* A queue being closed takes nothing more: once the worker has let go
     * of it, the main thread frees it. */
    return q->closing ? NULL : q;
}

/* ---- Timer ---- */

static void arm(struct ipsecif_linux *lx, uint64_t deadline)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    if (deadline != UINT64_MAX) {
        if (deadline == 0) {
            deadline = 1; /* all zero would disarm */
        }
        its.it_value.tv_sec = (time_t)(deadline / 1000u);
        its.it_value.tv_nsec = (long)(deadline % 1000u) * 1000000L;
    }
    if (timerfd_settime(lx->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "timerfd_settime: %s", strerror(errno));
        return;
    }
    lx->armed = deadline;
}

static void on_timer(void *arg, int fd, short revents)
{
    struct ipsecif_linux *lx = arg;
    uint64_t expirations;

    (void)revents;
    if (read(fd, &expirations, sizeof(expirations)) < 0 && errno == EAGAIN) {
        return;
    }
    if (lx->ctx == NULL) {
        return;
    }
    arm(lx, ipsecif_timer(lx->ctx, ipsecif_posix_now_ms()));
}

/* Before each poll: any call since the last one may have moved the deadline. */
static uint64_t rearm(void *arg)
{
    struct ipsecif_linux *lx = arg;

    if (lx->ctx != NULL) {
        uint64_t d = ipsecif_next_deadline(lx->ctx);

        if (d != lx->armed) {
            arm(lx, d);
        }
    }
    return UINT64_MAX; /* the timerfd wakes the loop, not a poll timeout */
}

/* ---- Offloads: writing to the device ---- */

/* One packet to the device, behind the virtio header h when it has them. */
static void tun_write(struct ipsecif_linux_tun *t, const struct ipsecif_linux_vnet *h,
                      const uint8_t *pkt, size_t len)
{
    uint8_t vh[IPSECIF_LINUX_VNET_HDR_LEN];
    struct iovec iov[2];
    ssize_t want = (ssize_t)len;
    ssize_t n;

    if (!t->vnet) {
        n = write(t->fd, pkt, len);
    } else {
        ipsecif_linux_vnet_put(vh, h);
        iov[0].iov_base = vh;
        iov[0].iov_len = sizeof(vh);
        iov[1].iov_base = (void *)pkt;
        iov[1].iov_len = len;
        want += (ssize_t)sizeof(vh);
        n = writev(t->fd, iov, 2);
    }
    /* A TUN write is one packet; a device that is down refuses it. */
    if (n != want) {
        IPSECIF_POSIX_COUNT(t->tx_errors, 1);
    }
}

static void gro_emit(void *arg, const struct ipsecif_linux_vnet *h, const uint8_t *pkt, size_t len)
{
    tun_write(arg, h, pkt, len);
}

void ipsecif_linux_tun_flush(struct ipsecif_linux_tun *t)
{
    if (t->vnet && t->fd >= 0) {
        ipsecif_linux_gro_flush(&t->gro, gro_emit, t);
    }
}

/* Every device's held packet goes out (after a receive batch, before a poll). */
static void flush_held(void *arg)
{
    struct ipsecif_linux_held *hs = arg;
    size_t i;

    for (i = 0; i < hs->n; i++) {
        struct ipsecif_linux_tun *t = hs->v[i];

        t->gro_listed = false;
        ipsecif_linux_tun_flush(t);
    }
    hs->n = 0;
}

static void unlist_held(struct ipsecif_linux_tun *t)
{
    struct ipsecif_linux_held *hs = t->hs;
    size_t i;

    for (i = 0; hs != NULL && i < hs->n; i++) {
        if (hs->v[i] == t) {
            hs->v[i] = hs->v[--hs->n];
            break;
        }
    }
    t->gro_listed = false;
}

/* ---- Setup ---- */

int ipsecif_linux_init(struct ipsecif_linux *lx, size_t max_ifs)
{
    int saved;
    size_t i;

    memset(lx, 0, sizeof(*lx));
    lx->timer_fd = -1;
    lx->icmp4_fd = -1;
    lx->armed = UINT64_MAX;
    /* Each interface: a TUN device and at most one NAT-T socket; plus the raw
     * sockets, the timer, a control socket, a signal pipe and some spare. */
    if (ipsecif_posix_loop_init(&lx->loop, 2 * max_ifs + 16) < 0) {
        return -1;
    }
    lx->tuns = calloc(max_ifs > 0 ? max_ifs : 1, sizeof(*lx->tuns));
    if (lx->tuns == NULL) {
        errno = ENOMEM;
        goto fail;
    }
    lx->held.v = calloc(max_ifs > 0 ? max_ifs : 1, sizeof(*lx->held.v));
    if (lx->held.v == NULL) {
        errno = ENOMEM;
        goto fail;
    }
    lx->held.cap = max_ifs;
    lx->offload = true;
    lx->batch = IPSECIF_BATCH_MAX;
    lx->ntuns = max_ifs;
    lx->nworkers = 1;
    for (i = 0; i < max_ifs; i++) {
        lx->tuns[i].fd = -1;
        lx->tuns[i].lx = lx;
        lx->tuns[i].hs = &lx->held;
    }
    if (ipsecif_posix_outer_open(&lx->outer, &lx->loop, max_ifs) < 0) {
        goto fail;
    }
    /* IPPROTO_RAW: the header is ours (IP_HDRINCL implied); send only. */
    lx->icmp4_fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
    if (lx->icmp4_fd >= 0) {
        (void)shutdown(lx->icmp4_fd, SHUT_RD);
    }
    lx->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (lx->timer_fd < 0 ||
        ipsecif_posix_loop_add(&lx->loop, lx->timer_fd, POLLIN, on_timer, lx) < 0) {
        goto fail;
    }
    ipsecif_posix_loop_set_timer(&lx->loop, rearm, NULL, lx);
    ipsecif_posix_outer_set_burst_hook(&lx->outer, flush_held, &lx->held);
    if (ipsecif_posix_loop_add_flush(&lx->loop, flush_held, &lx->held) < 0) {
        goto fail;
    }
    return 0;
fail:
    saved = errno;
    ipsecif_linux_fini(lx);
    errno = saved;
    return -1;
}

int ipsecif_linux_set_batch(struct ipsecif_linux *lx, size_t n)
{
    size_t i;

    if (ipsecif_posix_outer_set_batch(&lx->outer, n) < 0) {
        return -1;
    }
    for (i = 0; i + 1 < lx->nworkers; i++) {
        (void)ipsecif_posix_outer_set_batch(&lx->workers[i].outer, n);
    }
    lx->batch = n;
    return 0;
}

void ipsecif_linux_set_ctx(struct ipsecif_linux *lx, struct ipsecif_ctx *ctx)
{
    size_t i;

    lx->ctx = ctx;
    ipsecif_posix_outer_set_ctx(&lx->outer, ctx);
    for (i = 0; i + 1 < lx->nworkers; i++) {
        ipsecif_posix_outer_set_ctx(&lx->workers[i].outer, ctx);
    }
}

void ipsecif_linux_fini(struct ipsecif_linux *lx)
{
    size_t i;

    for (i = 0; i < lx->ntuns; i++) {
        if (lx->tuns[i].ifp != NULL) {
            ipsecif_linux_tun_close(lx, &lx->tuns[i], false);
        }
    }
    workers_free(lx);
    ipsecif_posix_outer_close(&lx->outer);
    if (lx->timer_fd >= 0) {
        close(lx->timer_fd);
    }
    if (lx->icmp4_fd >= 0) {
        close(lx->icmp4_fd);
    }
    ipsecif_posix_loop_free(&lx->loop);
    free(lx->tuns);
    free(lx->held.v);
    memset(lx, 0, sizeof(*lx));
    lx->timer_fd = -1;
    lx->icmp4_fd = -1;
}

/* ---- TUN devices ---- */

static void dropped(const struct ipsecif_linux_tun *t, int rc)
{
    if (rc != IPSECIF_OK && ipsecif_posix_log_enabled(IPSECIF_LOG_DEBUG)) {
        ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "%s: output dropped: %s", t->name,
                           ipsecif_strerror(rc));
    }
}

/* The packets waiting in the vector to the library: one
 * ipsecif_if_output_batch() call, or ipsecif_if_output() with a batch
 * size of 1. Their buffers are free again on return. */
static void out_flush(struct ipsecif_linux_tun *t)
{
    size_t i, n = t->nv;

    t->nv = 0;
    if (n == 0 || t->ifp == NULL) {
        return;
    }
    lib_enter(t);
    if (t->lx->batch <= 1) {
        for (i = 0; i < n; i++) {
            IPSECIF_POSIX_COUNT(t->stats.out_calls, 1);
            dropped(t, ipsecif_if_output(t->lx->ctx, t->ifp, t->vp[i], ipsecif_posix_now_ms()));
        }
        lib_leave(t);
        return;
    }
    IPSECIF_POSIX_COUNT(t->stats.out_calls, 1);
    (void)ipsecif_if_output_batch(t->lx->ctx, t->ifp, NULL, t->vp, n, ipsecif_posix_now_ms(),
                                  t->vres);
    for (i = 0; i < n; i++) {
        dropped(t, t->vres[i]);
    }
    lib_leave(t);
}

/* Where the next packet of the vector goes (IPSECIF_LINUX_TUNBUF bytes
 * from the returned pointer minus IPSECIF_HEADROOM). */
static uint8_t *out_slot(const struct ipsecif_linux_tun *t)
{
    return t->vbuf + t->nv * IPSECIF_LINUX_TUNBUF + IPSECIF_HEADROOM;
}

/* The packet of len bytes at out_slot() joins the vector, which goes to
 * the library when it holds a batch. */
static void out_push(struct ipsecif_linux_tun *t, size_t len)
{
    struct ipsecif_buf *b = &t->vb[t->nv];
    size_t max = t->lx->batch < IPSECIF_LINUX_TUNVEC ? t->lx->batch : IPSECIF_LINUX_TUNVEC;

    b->base = t->vbuf + t->nv * IPSECIF_LINUX_TUNBUF;
    b->cap = IPSECIF_LINUX_TUNBUF;
    b->off = IPSECIF_HEADROOM;
    b->len = len;
    t->nv++;
    if (t->nv >= max) {
        out_flush(t);
    }
}

/* One read with a virtio header: a single packet joins the vector (copied;
 * one too long for a vector buffer, or every one with a batch size of 1,
 * goes to the library from the read buffer); a super-packet is cut into
 * segments in the vector's buffers. */
static void vnet_input(struct ipsecif_linux_tun *t, size_t n)
{
    const size_t seg_cap = IPSECIF_LINUX_TUNBUF - IPSECIF_HEADROOM - IPSECIF_TAILROOM;
    uint8_t *pkt = t->sbuf + IPSECIF_HEADROOM;
    struct ipsecif_linux_vnet h;
    struct ipsecif_linux_gso g;
    bool oversize;
    size_t len;

    if (n < IPSECIF_LINUX_VNET_HDR_LEN) {
        IPSECIF_POSIX_COUNT(t->stats.gso_drop, 1);
        return;
    }
    ipsecif_linux_vnet_get(pkt - IPSECIF_LINUX_VNET_HDR_LEN, &h);
    n -= IPSECIF_LINUX_VNET_HDR_LEN;
    if (ipsecif_linux_gso_prepare(pkt, n, &h, seg_cap, &g) != IPSECIF_LINUX_GSO_OK) {
        IPSECIF_POSIX_COUNT(t->stats.gso_drop, 1);
        return;
    }
    if (!g.gso) {
        struct ipsecif_buf b;

        if ((h.flags & IPSECIF_LINUX_VNET_F_NEEDS_CSUM) != 0) {
            IPSECIF_POSIX_COUNT(t->stats.csum, 1);
        }
        if (t->lx->batch > 1 && n <= seg_cap) {
            memcpy(out_slot(t), pkt, n);
            out_push(t, n);
            return;
        }
        /* In order: what waits goes first. */
        out_flush(t);
        if (t->ifp == NULL) {
            return;
        }
        b.base = t->sbuf;
        b.cap = IPSECIF_LINUX_TUNBUF_GSO;
        b.off = IPSECIF_HEADROOM;
        b.len = n;
        IPSECIF_POSIX_COUNT(t->stats.out_calls, 1);
        lib_enter(t);
        dropped(t, ipsecif_if_output(t->lx->ctx, t->ifp, &b, ipsecif_posix_now_ms()));
        lib_leave(t);
        return;
    }
    IPSECIF_POSIX_COUNT(t->stats.gso_in, 1);
    /* Segments over the MTU: the library sends the ICMP error for the
     * first (as for any oversize packet); the rest would only repeat it. */
    oversize =
        ipsecif_linux_gso_seg_max(&g) > t->mtu && (pkt[0] >> 4 == 6 || (pkt[6] & 0x40u) != 0);
    while (t->ifp != NULL && (len = ipsecif_linux_gso_next(&g, out_slot(t))) != 0) {
        IPSECIF_POSIX_COUNT(t->stats.segments, 1);
        out_push(t, len);
        if (oversize) {
            IPSECIF_POSIX_COUNT(t->stats.gso_toobig, ipsecif_linux_gso_count(&g) - 1);
            break;
        }
    }
}

static void on_tun(void *arg, int fd, short revents)
{
    struct ipsecif_linux_tun *t = arg;
    struct ipsecif_linux *lx = t->lx;
    int i;

    (void)revents;
    for (i = 0; i < TUN_BATCH && t->ifp != NULL; i++) {
        ssize_t n;

        if (t->vnet) {
            n = read(fd, t->sbuf + IPSECIF_HEADROOM - IPSECIF_LINUX_VNET_HDR_LEN,
                     IPSECIF_LINUX_VNET_HDR_LEN + IPSECIF_LINUX_GSO_MAX);
        } else {
            n = read(fd, out_slot(t), IPSECIF_LINUX_TUNBUF - IPSECIF_HEADROOM - IPSECIF_TAILROOM);
        }
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                IPSECIF_POSIX_COUNT(t->rx_errors, 1);
            }
            break;
        }
        if (t->vnet) {
            vnet_input(t, (size_t)n);
        } else {
            out_push(t, (size_t)n);
        }
    }
    /* The burst's rest to the library, then its ESP goes out, in as few
     * system calls as it takes. */
    out_flush(t);
    if (t->wk != NULL) {
        worker_burst_end(t->wk);
        return;
    }
    ipsecif_posix_outer_flush(&lx->outer);
}

static void free_offloads(struct ipsecif_linux_tun *t)
{
    free(t->sbuf);
    free(t->gbuf);
    t->sbuf = NULL;
    t->gbuf = NULL;
    t->vnet = false;
    t->gro_listed = false;
}

/* The device was attached with IFF_VNET_HDR: buffers, header size and the
 * offloads (best effort: without TUNSETOFFLOAD the kernel sends only single
 * packets, which still carry the header). 0, or -1 with errno set. */
static int setup_offloads(struct ipsecif_linux_tun *t)
{
    int sz = IPSECIF_LINUX_VNET_HDR_LEN;
    unsigned long off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

    t->sbuf = malloc(IPSECIF_LINUX_TUNBUF_GSO);
    t->gbuf = malloc(IPSECIF_LINUX_GSO_MAX);
    if (t->sbuf == NULL || t->gbuf == NULL) {
        free_offloads(t);
        errno = ENOMEM;
        return -1;
    }
    if (ioctl(t->fd, TUNSETVNETHDRSZ, &sz) < 0) {
        free_offloads(t);
        return -1;
    }
    if (ioctl(t->fd, TUNSETOFFLOAD, off) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_WARN, "%s: TUNSETOFFLOAD: %s (no TSO)", t->name,
                           strerror(errno));
    }
    ipsecif_linux_gro_init(&t->gro, t->gbuf, IPSECIF_LINUX_GSO_MAX);
    t->vnet = true;
    return 0;
}

/* One interface ioctl on the TUN device's name; ifr carries the value in
 * and out. 0 or -1 with errno. */
static int tun_ioctl(const struct ipsecif_linux_tun *t, unsigned long req, struct ifreq *ifr)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc;
    int saved;

    if (fd < 0) {
        return -1;
    }
    memcpy(ifr->ifr_name, t->name, strlen(t->name) + 1);
    rc = ioctl(fd, req, ifr);
    saved = errno;
    close(fd);
    errno = saved;
    return rc < 0 ? -1 : 0;
}

/* The queue in front of the TUN device as deep as an Ethernet NIC's
 * (TUN's own default is 500 packets), so that a burst from a local sender
 * waits for the daemon's next read instead of being dropped. Best effort. */
static void set_txqlen(const struct ipsecif_linux_tun *t)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_qlen = IPSECIF_LINUX_TXQLEN;
    (void)tun_ioctl(t, SIOCSIFTXQLEN, &ifr);
}

/* Routes into a device whose carrier is off (no process attached) stay in use
 * unless ignore_routes_with_linkdown is on: keep it off on our devices, so
 * that while the daemon is gone their traffic is dropped here instead of
 * taking a less specific route in clear. Best effort (IPv6 may be off). */
static void keep_linkdown_routes(const char *name)
{
    static const char *const fmts[] = {"/proc/sys/net/ipv4/conf/%s/ignore_routes_with_linkdown",
                                       "/proc/sys/net/ipv6/conf/%s/ignore_routes_with_linkdown"};
    char path[128];
    size_t i;

    for (i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        int fd;

        snprintf(path, sizeof(path), fmts[i], name);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        if (write(fd, "0\n", 2) != 2) {
            ipsecif_posix_logf(IPSECIF_LOG_WARN, "%s: %s", path, strerror(errno));
        }
        close(fd);
    }
}

/* The vector buffers of device (or queue) t, empty, with their pointer
 * table and counters cleared. 0, or -1 with errno. */
static int tun_bufs(struct ipsecif_linux_tun *t)
{
    size_t i;

    t->nv = 0;
    t->rx_errors = 0;
    t->tx_errors = 0;
    memset(&t->stats, 0, sizeof(t->stats));
    t->vbuf = malloc((size_t)IPSECIF_LINUX_TUNVEC * IPSECIF_LINUX_TUNBUF);
    if (t->vbuf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    for (i = 0; i < IPSECIF_LINUX_TUNVEC; i++) {
        t->vp[i] = &t->vb[i];
    }
    return 0;
}

struct ipsecif_linux_tun *ipsecif_linux_tun_open(struct ipsecif_linux *lx, struct ipsecif_if *ifp)
{
    struct ipsecif_linux_tun *t = NULL;
    struct ipsecif_if_info info;
    struct ifreq ifr;
    const char *name = ipsecif_if_name(ifp);
    bool persist = false;
    size_t i;
    int saved;
    int rc;

    if (strlen(name) >= IFNAMSIZ || strlen(name) >= sizeof(t->name) ||
        ipsecif_if_get_info(lx->ctx, ifp, &info) != IPSECIF_OK) {
        errno = EINVAL;
        return NULL;
    }
    for (i = 0; i < lx->ntuns; i++) {
        if (lx->tuns[i].ifp == NULL) {
            t = &lx->tuns[i];
            break;
        }
    }
    if (t == NULL) {
        errno = ENOSPC;
        return NULL;
    }
    t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (t->fd < 0) {
        return NULL;
    }
    /* Attaches to a persistent device of this name if there is one (EBUSY if
     * another process holds it, EINVAL if it is another kind of device or
     * its flags differ). Devices are made multi-queue, so that a daemon with
     * workers can attach a queue per thread; one thread alone also takes a
     * single-queue device an earlier version left; and without virtio
     * headers where the kernel has none. */
    {
        const int base = IFF_TUN | IFF_NO_PI;
        const int tries[] = {base | IFF_MULTI_QUEUE | IFF_VNET_HDR, base | IFF_VNET_HDR,
                             base | IFF_MULTI_QUEUE, base};

        rc = -1;
        errno = EINVAL;
        for (i = 0; i < sizeof(tries) / sizeof(tries[0]) && rc < 0 && errno == EINVAL; i++) {
            if (((tries[i] & IFF_VNET_HDR) != 0 && !lx->offload) ||
                ((tries[i] & IFF_MULTI_QUEUE) == 0 && lx->nworkers > 1)) {
                continue;
            }
            memset(&ifr, 0, sizeof(ifr));
            ifr.ifr_flags = (short)tries[i];
            memcpy(ifr.ifr_name, name, strlen(name) + 1);
            t->qflags = tries[i];
            rc = ioctl(t->fd, TUNSETIFF, &ifr);
        }
        if (rc < 0 && errno == EINVAL && lx->nworkers > 1) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR,
                               "%s: not a multi-queue TUN device, which workers need "
                               "(delete it, or run one thread)",
                               name);
        }
    }
    t->vnet = false;
    if (rc < 0 || ioctl(t->fd, TUNGETIFF, &ifr) < 0) {
        goto fail;
    }
    t->adopted = (ifr.ifr_flags & IFF_PERSIST) != 0;
    /* Fail closed: the device, its addresses and its routes outlive this
     * process, and with no process attached the kernel drops what is routed
     * into it. Only ipsecif_linux_tun_close(..., true) removes it. */
    if (!t->adopted && ioctl(t->fd, TUNSETPERSIST, 1) < 0) {
        goto fail;
    }
    persist = true;
    memcpy(t->name, name, strlen(name) + 1);
    t->ifp = ifp;
    t->natt_family = 0;
    t->natt_port = 0;
    if (tun_bufs(t) < 0) {
        goto fail;
    }
    if ((ifr.ifr_flags & IFF_VNET_HDR) != 0) {
        if (setup_offloads(t) < 0) {
            goto fail;
        }
    } else {
        /* Offloads an earlier process left on the device would hand this
         * reader super-packets it cannot take. */
        (void)ioctl(t->fd, TUNSETOFFLOAD, 0ul);
    }
    if (ipsecif_linux_tun_set_mtu(t, info.mtu) < 0 ||
        ipsecif_posix_loop_add(&lx->loop, t->fd, POLLIN, on_tun, t) < 0) {
        goto fail;
    }
    if (queues_open(lx, t) < 0) {
        ipsecif_posix_loop_del(&lx->loop, t->fd);
        goto fail;
    }
    set_txqlen(t);
    keep_linkdown_routes(t->name);
    ipsecif_if_set_user(ifp, t);
    return t;
fail:
    saved = errno;
    /* A device made here goes again; one that was there before stays. */
    if (persist && !t->adopted) {
        (void)ioctl(t->fd, TUNSETPERSIST, 0);
    }
    close(t->fd);
    t->fd = -1;
    t->ifp = NULL;
    t->adopted = false;
    free_offloads(t);
    free(t->vbuf);
    t->vbuf = NULL;
    errno = saved;
    return NULL;
}

void ipsecif_linux_tun_close(struct ipsecif_linux *lx, struct ipsecif_linux_tun *t, bool remove)
{
    if (t->ifp == NULL) {
        return;
    }
    /* The workers' queues first: they may hold packets for the NAT-T socket. */
    queues_close(lx, t);
    if (t->natt_family != 0) {
        natt_release(lx, t->natt_family, t->natt_port);
        t->natt_family = 0;
        t->natt_port = 0;
    }
    ipsecif_posix_loop_del(&lx->loop, t->fd);
    if (t->vnet) {
        /* What is held goes out; the device stays plain for the next reader. */
        ipsecif_linux_tun_flush(t);
        unlist_held(t);
        (void)ioctl(t->fd, TUNSETOFFLOAD, 0ul);
    }
    /* Not persistent any more: the kernel removes the device with its
     * addresses and routes when the descriptor closes. */
    if (remove && ioctl(t->fd, TUNSETPERSIST, 0) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "%s: TUNSETPERSIST: %s", t->name, strerror(errno));
    }
    close(t->fd);
    t->fd = -1;
    t->adopted = false;
    free_offloads(t);
    free(t->vbuf);
    t->vbuf = NULL;
    t->nv = 0;
    ipsecif_if_set_user(t->ifp, NULL);
    t->ifp = NULL;
}

struct ipsecif_linux_tun *ipsecif_linux_tun_of(struct ipsecif_if *ifp)
{
    return ifp != NULL ? ipsecif_if_get_user(ifp) : NULL;
}

int ipsecif_linux_tun_set_up(struct ipsecif_linux_tun *t, bool up)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof(ifr));
    if (tun_ioctl(t, SIOCGIFFLAGS, &ifr) < 0) {
        return -1;
    }
    if (up) {
        ifr.ifr_flags |= IFF_UP;
    } else {
        ifr.ifr_flags &= ~IFF_UP;
    }
    return tun_ioctl(t, SIOCSIFFLAGS, &ifr);
}

int ipsecif_linux_tun_set_mtu(struct ipsecif_linux_tun *t, unsigned mtu)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_mtu = (int)mtu;
    if (tun_ioctl(t, SIOCSIFMTU, &ifr) < 0) {
        return -1;
    }
    t->mtu = mtu;
    if (t->wk == NULL && t->lx != NULL && t >= t->lx->tuns && t < t->lx->tuns + t->lx->ntuns) {
        size_t k;

        for (k = 0; k + 1 < t->lx->nworkers; k++) {
            t->lx->workers[k].tuns[t - t->lx->tuns].mtu = mtu;
        }
    }
    return 0;
}

/* ---- Addresses over rtnetlink ---- */

int ipsecif_linux_addr_add(struct ipsecif_linux_tun *t, const struct ipsecif_addr *addr,
                           unsigned plen, const struct ipsecif_addr *peer)
{
    struct ipsecif_linux_nlreq r;
    struct ifaddrmsg ifa;
    size_t alen = addr->family == IPSECIF_AF_INET ? 4 : 16;
    unsigned idx = if_nametoindex(t->name);

    if (idx == 0) {
        return -1;
    }
    if ((addr->family != IPSECIF_AF_INET && addr->family != IPSECIF_AF_INET6) || plen > alen * 8 ||
        (peer != NULL && peer->family != addr->family)) {
        errno = EINVAL;
        return -1;
    }
    memset(&ifa, 0, sizeof(ifa));
    ifa.ifa_family = addr->family == IPSECIF_AF_INET ? AF_INET : AF_INET6;
    ifa.ifa_prefixlen = (unsigned char)plen;
    /* The far end of a tunnel cannot answer duplicate address detection. */
    ifa.ifa_flags = addr->family == IPSECIF_AF_INET6 ? IFA_F_NODAD : 0;
    ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    ifa.ifa_index = idx;
    ipsecif_linux_nl_begin(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof(ifa));
    ipsecif_linux_nl_attr(&r, IFA_LOCAL, addr->bytes, alen);
    ipsecif_linux_nl_attr(&r, IFA_ADDRESS, peer != NULL ? peer->bytes : addr->bytes, alen);
    if (ipsecif_linux_nl_talk(&r) < 0) {
        /* Already there: a device kept from an earlier run has its addresses. */
        return errno == EEXIST ? 0 : -1;
    }
    return 0;
}

/* One RTM_NEWADDR message of a dump: the device's global addresses to fn. */
static void addr_msg(const struct nlmsghdr *h, unsigned idx, ipsecif_linux_addr_fn fn, void *arg)
{
    const struct ifaddrmsg *ifa = NLMSG_DATA(h);
    const struct rtattr *rta;
    struct ipsecif_addr local;
    struct ipsecif_addr address;
    int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifa));
    size_t alen;
    bool has_local = false;
    bool has_address = false;

    if (len < 0 || ifa->ifa_index != idx || ifa->ifa_scope != RT_SCOPE_UNIVERSE ||
        (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)) {
        return;
    }
    alen = ifa->ifa_family == AF_INET ? 4 : 16;
    memset(&local, 0, sizeof(local));
    memset(&address, 0, sizeof(address));
    local.family = ifa->ifa_family == AF_INET ? IPSECIF_AF_INET : IPSECIF_AF_INET6;
    address.family = local.family;
    for (rta = IFA_RTA(ifa); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
        if (RTA_PAYLOAD(rta) != alen) {
            continue;
        }
        if (rta->rta_type == IFA_LOCAL) {
            memcpy(local.bytes, RTA_DATA(rta), alen);
            has_local = true;
        } else if (rta->rta_type == IFA_ADDRESS) {
            memcpy(address.bytes, RTA_DATA(rta), alen);
            has_address = true;
        }
    }
    /* IFA_ADDRESS alone: a plain address; both and different: a peer. */
    if (!has_local && has_address) {
        fn(arg, &address, ifa->ifa_prefixlen, NULL);
    } else if (has_local) {
        bool peer = has_address && memcmp(local.bytes, address.bytes, alen) != 0;

        fn(arg, &local, ifa->ifa_prefixlen, peer ? &address : NULL);
    }
}

int ipsecif_linux_addr_walk(const struct ipsecif_linux_tun *t, ipsecif_linux_addr_fn fn, void *arg)
{
    struct sockaddr_nl sa;
    struct ipsecif_linux_nlreq r;
    struct ifaddrmsg ifa;
    union {
        struct nlmsghdr nh;
        uint8_t b[8192];
    } buf;
    unsigned idx = if_nametoindex(t->name);
    int fd;
    int rc = -1;
    int saved;

    if (idx == 0) {
        return -1;
    }
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        return -1;
    }
    memset(&ifa, 0, sizeof(ifa));
    ifa.ifa_family = AF_UNSPEC;
    ipsecif_linux_nl_begin(&r, RTM_GETADDR, NLM_F_DUMP, &ifa, sizeof(ifa));
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    if (sendto(fd, &r, r.nh.nlmsg_len, 0, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
        goto out;
    }
    for (;;) {
        ssize_t n = recv(fd, buf.b, sizeof(buf.b), 0);
        struct nlmsghdr *h;

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            goto out;
        }
        for (h = &buf.nh; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != r.nh.nlmsg_seq) {
                continue;
            }
            if (h->nlmsg_type == NLMSG_DONE) {
                rc = 0;
                goto out;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr e;

                memcpy(&e, NLMSG_DATA(h), sizeof(e));
                errno = e.error != 0 ? -e.error : EPROTO;
                goto out;
            }
            if (h->nlmsg_type == RTM_NEWADDR) {
                addr_msg(h, idx, fn, arg);
            }
        }
    }
out:
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* ---- NAT-T socket per interface ---- */

int ipsecif_linux_sync_natt(struct ipsecif_linux *lx, struct ipsecif_linux_tun *t)
{
    struct ipsecif_if_info info;
    uint8_t family = 0;
    uint16_t port = 0;

    if (ipsecif_if_get_info(lx->ctx, t->ifp, &info) != IPSECIF_OK) {
        errno = EINVAL;
        return -1;
    }
    if ((info.flags & IPSECIF_IFF_LINK0) != 0 && info.has_tunnel) {
        family = info.src.family;
        port = info.sport != 0 ? info.sport : IPSECIF_NATT_PORT;
    }
    if (family == t->natt_family && port == t->natt_port) {
        return 0;
    }
    /* Take the new one before dropping the old, so a shared socket stays open. */
    if (family != 0 && ipsecif_posix_outer_natt_ref(&lx->outer, family, port) < 0) {
        return -1;
    }
    if (t->natt_family != 0) {
        natt_release(lx, t->natt_family, t->natt_port);
    }
    t->natt_family = family;
    t->natt_port = port;
    return 0;
}

/* ---- Port callbacks ---- */

int ipsecif_linux_send_outer(void *user, struct ipsecif_if *ifp,
                             const struct ipsecif_outer_meta *meta, const struct ipsecif_buf *pkt)
{
    struct ipsecif_linux *lx = user;

    (void)ifp;
    return ipsecif_posix_outer_send(cur_wk != NULL ? &cur_wk->outer : &lx->outer, meta, pkt);
}

void ipsecif_linux_deliver_inner(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    struct ipsecif_linux *lx = user;
    struct ipsecif_linux_tun *t = here(lx, ipsecif_linux_tun_of(ifp));
    struct ipsecif_linux_vnet none;

    if (t == NULL || t->fd < 0) {
        return;
    }
    if (!t->vnet) {
        memset(&none, 0, sizeof(none));
        tun_write(t, &none, ipsecif_buf_data(pkt), pkt->len);
        return;
    }
    /* Held until the end of the receive batch, when it may have grown. */
    ipsecif_linux_gro_add(&t->gro, ipsecif_buf_data(pkt), pkt->len, gro_emit, t);
    if (ipsecif_linux_gro_pending(&t->gro) && !t->gro_listed && t->hs != NULL &&
        t->hs->n < t->hs->cap) {
        t->hs->v[t->hs->n++] = t;
        t->gro_listed = true;
    } else if (ipsecif_linux_gro_pending(&t->gro) && !t->gro_listed) {
        ipsecif_linux_tun_flush(t);
    }
}

void ipsecif_linux_deliver_icmp(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    struct ipsecif_linux *lx = user;
    struct ipsecif_linux_tun *t = here(lx, ipsecif_linux_tun_of(ifp));
    struct ipsecif_linux_vnet none;
    const uint8_t *p = ipsecif_buf_data(pkt);

    if (t == NULL || t->fd < 0) {
        return;
    }
    if (lx != NULL && lx->icmp4_fd >= 0 && pkt->len >= 20 && (p[0] >> 4) == 4) {
        struct sockaddr_in to;

        memset(&to, 0, sizeof(to));
        to.sin_family = AF_INET;
        memcpy(&to.sin_addr, p + 16, 4);
        if (sendto(lx->icmp4_fd, p, pkt->len, MSG_DONTWAIT, (const struct sockaddr *)&to,
                   sizeof(to)) == (ssize_t)pkt->len) {
            IPSECIF_POSIX_COUNT(t->stats.icmp_sent, 1);
            return;
        }
        IPSECIF_POSIX_COUNT(t->stats.icmp_send_errors, 1);
        return;
    }
    ipsecif_linux_tun_flush(t);
    memset(&none, 0, sizeof(none));
    tun_write(t, &none, ipsecif_buf_data(pkt), pkt->len);
}

/* ---- Workers (see ipsecif_linux_set_workers() for the model) ---- */

void ipsecif_linux_tun_stats_add(struct ipsecif_linux_tun_stats *sum,
                                 const struct ipsecif_linux_tun_stats *s)
{
    sum->gso_in += IPSECIF_POSIX_READ(s->gso_in);
    sum->segments += IPSECIF_POSIX_READ(s->segments);
    sum->csum += IPSECIF_POSIX_READ(s->csum);
    sum->gso_drop += IPSECIF_POSIX_READ(s->gso_drop);
    sum->gso_toobig += IPSECIF_POSIX_READ(s->gso_toobig);
    sum->out_calls += IPSECIF_POSIX_READ(s->out_calls);
    sum->icmp_sent += IPSECIF_POSIX_READ(s->icmp_sent);
    sum->icmp_send_errors += IPSECIF_POSIX_READ(s->icmp_send_errors);
}

/* A worker's burst is done: its held packets and its ESP go out, with the
 * lock released; then, under it, the main thread's timer is brought
 * forward if a call of the burst moved the next deadline closer (a
 * fragment waiting for the rest, an ACQUIRE). */
static void worker_burst_end(void *arg)
{
    struct ipsecif_linux_worker *w = arg;
    struct ipsecif_linux *lx = w->lx;
    uint64_t d;

    flush_held(&w->held);
    ipsecif_posix_outer_flush(&w->outer);
    pthread_mutex_lock(&lx->lock);
    d = lx->ctx != NULL ? ipsecif_next_deadline(lx->ctx) : UINT64_MAX;
    if (d < lx->armed) {
        arm(lx, d);
    }
    pthread_mutex_unlock(&lx->lock);
}

/* A queue that has left (or never joined) its worker's loop: closed, its
 * buffers freed, the slot free. */
static void queue_free(struct ipsecif_linux_tun *q)
{
    if (q->fd >= 0) {
        close(q->fd);
    }
    q->fd = -1;
    free_offloads(q);
    free(q->vbuf);
    q->vbuf = NULL;
    q->nv = 0;
    q->ifp = NULL;
    q->polled = false;
    q->closing = false;
}

/* Worker w's queue of device t: attached with t's flags, buffers as t's. */
static int queue_open(struct ipsecif_linux_worker *w, const struct ipsecif_linux_tun *t)
{
    struct ipsecif_linux_tun *q = &w->tuns[t - w->lx->tuns];
    struct ifreq ifr;
    int saved;

    q->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (q->fd < 0) {
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = (short)t->qflags;
    memcpy(ifr.ifr_name, t->name, strlen(t->name) + 1);
    if (ioctl(q->fd, TUNSETIFF, &ifr) < 0) {
        goto fail;
    }
    memcpy(q->name, t->name, strlen(t->name) + 1);
    if (tun_bufs(q) < 0 || (t->vnet && setup_offloads(q) < 0)) {
        goto fail;
    }
    q->mtu = t->mtu;
    q->polled = false;
    q->closing = false;
    q->qflags = t->qflags;
    q->ifp = t->ifp; /* the worker takes it in at its next wakeup */
    return 0;
fail:
    saved = errno;
    queue_free(q);
    errno = saved;
    return -1;
}

/* Every worker's queue of t, once t is open. 0, or -1 with errno (none
 * left open). */
static int queues_open(struct ipsecif_linux *lx, struct ipsecif_linux_tun *t)
{
    size_t k;
    int saved;

    for (k = 0; k + 1 < lx->nworkers; k++) {
        if (queue_open(&lx->workers[k], t) < 0) {
            saved = errno;
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "%s: queue of worker %zu: %s", t->name, k + 1,
                               strerror(errno));
            while (k-- > 0) {
                queue_free(&lx->workers[k].tuns[t - lx->tuns]);
            }
            errno = saved;
            return -1;
        }
    }
    workers_sync(lx, false);
    return 0;
}

/* Every worker lets go of its queue of t (waiting for the running ones),
 * then the queues are closed. */
static void queues_close(struct ipsecif_linux *lx, struct ipsecif_linux_tun *t)
{
    size_t k;

    if (lx->nworkers <= 1) {
        return;
    }
    for (k = 0; k + 1 < lx->nworkers; k++) {
        lx->workers[k].tuns[t - lx->tuns].closing = true;
    }
    workers_sync(lx, true);
    for (k = 0; k + 1 < lx->nworkers; k++) {
        struct ipsecif_linux_worker *w = &lx->workers[k];
        struct ipsecif_linux_tun *q = &w->tuns[t - lx->tuns];

        if (q->ifp == NULL) {
            continue;
        }
        if (q->polled) {
            /* The workers do not run: taken out here. */
            ipsecif_posix_loop_del(&w->loop, q->fd);
            ipsecif_linux_tun_flush(q);
            unlist_held(q);
        }
        queue_free(q);
    }
}

/* Under the lock, on worker w's thread: its loop follows the device set. */
static void worker_take(struct ipsecif_linux_worker *w)
{
    size_t i;

    for (i = 0; i < w->lx->ntuns; i++) {
        struct ipsecif_linux_tun *q = &w->tuns[i];

        if (q->ifp == NULL) {
            continue;
        }
        if (q->closing && q->polled) {
            ipsecif_posix_loop_del(&w->loop, q->fd);
            ipsecif_linux_tun_flush(q);
            unlist_held(q);
            q->polled = false;
        } else if (!q->closing && !q->polled) {
            if (ipsecif_posix_loop_add(&w->loop, q->fd, POLLIN, on_tun, q) < 0) {
                ipsecif_posix_logf(IPSECIF_LOG_ERR, "%s: worker %u cannot watch its queue", q->name,
                                   w->index);
                continue;
            }
            q->polled = true;
        }
    }
    w->gen_seen = w->lx->gen;
    pthread_cond_broadcast(&w->lx->cond);
}

static void on_wake(void *arg, int fd, short revents)
{
    struct ipsecif_linux_worker *w = arg;
    uint64_t v;

    (void)revents;
    (void)read(fd, &v, sizeof(v));
    pthread_mutex_lock(&w->lx->lock);
    worker_take(w);
    pthread_mutex_unlock(&w->lx->lock);
}

/* Main thread, under the lock: a NAT-T socket's user goes. With workers it
 * stays open until none can hold a packet for it any more: packets queued
 * before the socket could no longer be found are sent before a worker
 * takes in the next generation. */
static void natt_release(struct ipsecif_linux *lx, uint8_t family, uint16_t port)
{
    ipsecif_posix_outer_natt_unref(&lx->outer, family, port);
    if (lx->nworkers > 1) {
        workers_sync(lx, true);
        ipsecif_posix_outer_natt_reap(&lx->outer);
    }
}

/* Main thread, under the lock: tell the running workers that the device
 * set changed; with wait, return once each has taken the change in. */
static void workers_sync(struct ipsecif_linux *lx, bool wait)
{
    const uint64_t one = 1;
    size_t k;

    if (lx->nworkers <= 1 || !lx->running) {
        return;
    }
    lx->gen++;
    for (k = 0; k + 1 < lx->nworkers; k++) {
        if (write(lx->workers[k].wake_fd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
            /* An eventfd write fails only at its maximum: it is readable. */
        }
    }
    for (k = 0; wait && k + 1 < lx->nworkers; k++) {
        while (lx->workers[k].started && lx->workers[k].gen_seen < lx->gen) {
            pthread_cond_wait(&lx->cond, &lx->lock);
        }
    }
}

static void *worker_main(void *arg)
{
    struct ipsecif_linux_worker *w = arg;

    cur_wk = w;
    pthread_mutex_lock(&w->lx->lock);
    worker_take(w);
    pthread_mutex_unlock(&w->lx->lock);
    (void)ipsecif_posix_loop_run(&w->loop);
    /* What the last round left goes out. */
    flush_held(&w->held);
    ipsecif_posix_outer_flush(&w->outer);
    return NULL;
}

static void workers_free(struct ipsecif_linux *lx)
{
    size_t k, i;

    if (lx->workers == NULL) {
        return;
    }
    for (k = 0; k + 1 < lx->nworkers; k++) {
        struct ipsecif_linux_worker *w = &lx->workers[k];

        for (i = 0; w->tuns != NULL && i < lx->ntuns; i++) {
            if (w->tuns[i].ifp != NULL || w->tuns[i].fd >= 0) {
                queue_free(&w->tuns[i]);
            }
        }
        ipsecif_posix_outer_close(&w->outer);
        if (w->wake_fd >= 0) {
            close(w->wake_fd);
        }
        if (w->loop.pfd != NULL) {
            ipsecif_posix_loop_free(&w->loop);
        }
        free(w->tuns);
        free(w->held.v);
    }
    free(lx->workers);
    lx->workers = NULL;
    lx->nworkers = 1;
    pthread_cond_destroy(&lx->cond);
    pthread_mutex_destroy(&lx->lock);
    lx->outer.natt_defer = false;
    ipsecif_posix_outer_natt_reap(&lx->outer);
    (void)ipsecif_posix_outer_steer(&lx->outer, 1, 0);
}

static int worker_setup(struct ipsecif_linux *lx, struct ipsecif_linux_worker *w, size_t n)
{
    size_t i;

    if (ipsecif_posix_loop_init(&w->loop, lx->ntuns + 8) < 0) {
        return -1;
    }
    w->tuns = calloc(lx->ntuns > 0 ? lx->ntuns : 1, sizeof(*w->tuns));
    w->held.v = calloc(lx->ntuns > 0 ? lx->ntuns : 1, sizeof(*w->held.v));
    if (w->tuns == NULL || w->held.v == NULL) {
        errno = ENOMEM;
        return -1;
    }
    w->held.cap = lx->ntuns;
    for (i = 0; i < lx->ntuns; i++) {
        w->tuns[i].fd = -1;
        w->tuns[i].lx = lx;
        w->tuns[i].wk = w;
        w->tuns[i].hs = &w->held;
    }
    if (ipsecif_posix_outer_open(&w->outer, &w->loop, 0) < 0 ||
        ipsecif_posix_outer_set_batch(&w->outer, lx->batch) < 0 ||
        ipsecif_posix_outer_steer(&w->outer, (uint32_t)n, w->index) < 0) {
        return -1;
    }
    ipsecif_posix_outer_set_shared(&w->outer, &lx->lock, &lx->outer);
    ipsecif_posix_outer_set_burst_hook(&w->outer, worker_burst_end, w);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0 || ipsecif_posix_loop_add(&w->loop, w->wake_fd, POLLIN, on_wake, w) < 0 ||
        ipsecif_posix_loop_add_flush(&w->loop, flush_held, &w->held) < 0) {
        return -1;
    }
    return 0;
}

int ipsecif_linux_set_workers(struct ipsecif_linux *lx, size_t n)
{
    size_t k;
    int saved;

    if (n < 1 || n > IPSECIF_LINUX_WORKERS_MAX || lx->ctx != NULL || lx->workers != NULL) {
        errno = EINVAL;
        return -1;
    }
    for (k = 0; k < lx->ntuns; k++) {
        if (lx->tuns[k].ifp != NULL) {
            errno = EINVAL;
            return -1;
        }
    }
    if (n == 1) {
        return 0;
    }
    if (pthread_mutex_init(&lx->lock, NULL) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (pthread_cond_init(&lx->cond, NULL) != 0) {
        pthread_mutex_destroy(&lx->lock);
        errno = ENOMEM;
        return -1;
    }
    lx->workers = calloc(n - 1, sizeof(*lx->workers));
    if (lx->workers == NULL) {
        pthread_cond_destroy(&lx->cond);
        pthread_mutex_destroy(&lx->lock);
        errno = ENOMEM;
        return -1;
    }
    lx->nworkers = n;
    for (k = 0; k + 1 < n; k++) {
        lx->workers[k].lx = lx;
        lx->workers[k].index = (unsigned)(k + 1);
        lx->workers[k].wake_fd = -1;
    }
    for (k = 0; k + 1 < n; k++) {
        if (worker_setup(lx, &lx->workers[k], n) < 0) {
            goto fail;
        }
    }
    if (ipsecif_posix_outer_steer(&lx->outer, (uint32_t)n, 0) < 0) {
        goto fail;
    }
    lx->outer.natt_defer = true;
    return 0;
fail:
    saved = errno;
    workers_free(lx);
    errno = saved;
    return -1;
}

int ipsecif_linux_run(struct ipsecif_linux *lx)
{
    sigset_t all, old;
    size_t k;
    int err = 0;
    int rc = -1;

    if (lx->nworkers <= 1) {
        return ipsecif_posix_loop_run(&lx->loop);
    }
    pthread_mutex_lock(&lx->lock);
    /* Signals go to the main thread's loop, not to the workers. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (k = 0; k + 1 < lx->nworkers; k++) {
        struct ipsecif_linux_worker *w = &lx->workers[k];

        ipsecif_posix_outer_set_udp_gso(&w->outer, lx->outer.udp_gso);
        err = pthread_create(&w->thread, NULL, worker_main, w);
        if (err != 0) {
            break;
        }
        w->started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    lx->running = true;
    if (err == 0) {
        ipsecif_posix_loop_set_lock(&lx->loop, &lx->lock);
        rc = ipsecif_posix_loop_run(&lx->loop);
        ipsecif_posix_loop_set_lock(&lx->loop, NULL);
    } else {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "worker %zu: %s", k + 1, strerror(err));
    }
    lx->running = false;
    for (k = 0; k + 1 < lx->nworkers; k++) {
        const uint64_t one = 1;

        ipsecif_posix_loop_stop(&lx->workers[k].loop);
        if (write(lx->workers[k].wake_fd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
            /* readable already */
        }
    }
    pthread_mutex_unlock(&lx->lock);
    for (k = 0; k + 1 < lx->nworkers; k++) {
        if (lx->workers[k].started) {
            pthread_join(lx->workers[k].thread, NULL);
            lx->workers[k].started = false;
        }
    }
    if (err != 0) {
        errno = err;
    }
    return rc;
}

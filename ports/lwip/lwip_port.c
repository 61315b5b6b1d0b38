/*
 * The lwIP port: netifs for ipsecif interfaces, raw pcbs for ESP, a UDP pcb
 * for NAT-T, one sys_timeout. See ipsecif_lwip.h for threads and memory.
 */
#include "ipsecif_lwip.h"

#include <stddef.h>
#include <string.h>

#include "ipsecif_crypto_mbedtls.h"
#include "lwip/ip.h"
#include "lwip/ip6.h"
#include "lwip/ip6_addr.h"
#include "lwip/netif.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/ip6.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"

#if !LWIP_IPV4 && !LWIP_IPV6
#error "the ipsecif lwIP port needs IPv4 or IPv6"
#endif

/* ---- Time and timer ---- */

uint64_t ipsecif_lwip_now(struct ipsecif_lwip *pl)
{
    uint32_t now = sys_now();

    if (now < pl->last_now) {
        pl->now_high++;
    }
    pl->last_now = now;
    return (uint64_t)pl->now_high << 32 | now;
}

static void timer_fire(void *arg);

static void arm(struct ipsecif_lwip *pl, uint64_t now, uint64_t at)
{
    uint64_t delay;

    if (pl->timer_armed) {
        sys_untimeout(timer_fire, pl);
    }
    delay = at > now ? at - now : 0;
    if (delay > IPSECIF_LWIP_MAX_SLEEP_MS) {
        delay = IPSECIF_LWIP_MAX_SLEEP_MS;
    }
    sys_timeout((u32_t)delay, timer_fire, pl);
    pl->timer_armed = true;
    pl->armed_at = now + delay;
}

static void timer_fire(void *arg)
{
    struct ipsecif_lwip *pl = arg;
    uint64_t now = ipsecif_lwip_now(pl);
    uint64_t next;

    pl->timer_armed = false;
    if (pl->ctx == NULL) {
        return;
    }
    next = ipsecif_timer(pl->ctx, now);
    arm(pl, now, next);
}

void ipsecif_lwip_rearm(struct ipsecif_lwip *pl)
{
    uint64_t now;
    uint64_t next;

    if (pl->ctx == NULL) {
        return;
    }
    /* Cheap on the packet path: sys_timeout is touched only when the
     * deadline moved before the armed one. */
    next = ipsecif_next_deadline(pl->ctx);
    if (pl->timer_armed && next >= pl->armed_at) {
        return;
    }
    now = ipsecif_lwip_now(pl);
    arm(pl, now, next);
}

/* ---- Addresses ---- */

void ipsecif_lwip_addr_from(struct ipsecif_addr *out, const ip_addr_t *in)
{
    memset(out, 0, sizeof(*out));
#if LWIP_IPV6
    if (IP_IS_V6(in)) {
        out->family = IPSECIF_AF_INET6;
        memcpy(out->bytes, ip_2_ip6(in)->addr, 16);
        return;
    }
#endif
#if LWIP_IPV4
    out->family = IPSECIF_AF_INET;
    memcpy(out->bytes, &ip_2_ip4(in)->addr, 4);
#endif
}

static void addr_to(ip_addr_t *out, const struct ipsecif_addr *in)
{
    memset(out, 0, sizeof(*out));
#if LWIP_IPV6
    if (in->family == IPSECIF_AF_INET6) {
        IP_SET_TYPE(out, IPADDR_TYPE_V6);
        memcpy(ip_2_ip6(out)->addr, in->bytes, 16);
        return;
    }
#endif
#if LWIP_IPV4
    IP_SET_TYPE(out, IPADDR_TYPE_V4);
    memcpy(&ip_2_ip4(out)->addr, in->bytes, 4);
#endif
}

/* ---- Handing inner packets to lwIP ---- */

/* Inner packets reach lwIP only after the core call returned: its input
 * may answer at once (an echo reply) and call back into the context. */
static void flush_pending(struct ipsecif_lwip *pl)
{
    struct pbuf *p = pl->pending;
    struct netif *nif = pl->pending_nif;

    pl->pending = NULL;
    pl->pending_nif = NULL;
    if (p == NULL) {
        return;
    }
    if (nif == NULL || pl->input == NULL || pl->input(p, nif) != ERR_OK) {
        pbuf_free(p);
    }
}

static struct netif *netif_of(struct ipsecif_if *ifp)
{
    struct ipsecif_lwip_if *lif = ifp != NULL ? ipsecif_if_get_user(ifp) : NULL;

    return lif != NULL ? &lif->netif : NULL;
}

/* ---- The transmit buffers ---- */

static void tx_free(struct pbuf *p)
{
    struct ipsecif_lwip_txbuf *tx =
        (struct ipsecif_lwip_txbuf *)(void *)((uint8_t *)p -
                                              offsetof(struct ipsecif_lwip_txbuf, pc));

    tx->state = IPSECIF_LWIP_TX_FREE;
    tx->port->tx_held--;
}

/* A free transmit buffer, now being worked on; NULL (counted) when lwIP
 * holds every one of them. */
static struct ipsecif_lwip_txbuf *tx_get(struct ipsecif_lwip *pl)
{
    size_t i;

    for (i = 0; i < IPSECIF_LWIP_TX_BUFS; i++) {
        struct ipsecif_lwip_txbuf *tx = &pl->tx[i];

        if (tx->state == IPSECIF_LWIP_TX_FREE) {
            tx->state = IPSECIF_LWIP_TX_WORK;
            return tx;
        }
    }
    pl->counters.tx_no_buf++;
    return NULL;
}

/* The buffer being worked on whose bytes are at base, or NULL. */
static struct ipsecif_lwip_txbuf *tx_of(struct ipsecif_lwip *pl, const uint8_t *base)
{
    size_t i;

    for (i = 0; i < IPSECIF_LWIP_TX_BUFS; i++) {
        if (pl->tx[i].mem == base && pl->tx[i].state == IPSECIF_LWIP_TX_WORK) {
            return &pl->tx[i];
        }
    }
    return NULL;
}

/* The len bytes at off in tx as a PBUF_RAM pbuf_custom, with the off bytes
 * in front as header room (Ethernet prepends its header there). The buffer
 * is lwIP's until the pbuf is freed. */
static struct pbuf *tx_wrap(struct ipsecif_lwip *pl, struct ipsecif_lwip_txbuf *tx, size_t off,
                            size_t len)
{
    struct pbuf *p;
    u16_t total = (u16_t)(off + len);

    p = pbuf_alloced_custom(PBUF_RAW, total, PBUF_RAM, &tx->pc, tx->mem, total);
    if (p == NULL || pbuf_remove_header(p, off) != 0) {
        tx->state = IPSECIF_LWIP_TX_FREE;
        return NULL;
    }
    tx->state = IPSECIF_LWIP_TX_HELD;
    pl->tx_held++;
    if (pl->tx_held > pl->counters.tx_held_max) {
        pl->counters.tx_held_max = pl->tx_held;
    }
    return p;
}

/* A packet that does not lie in a transmit buffer being worked on, copied
 * into a free one and wrapped; NULL when none is free. */
static struct pbuf *tx_copy(struct ipsecif_lwip *pl, const struct ipsecif_buf *pkt)
{
    const size_t head = IPSECIF_LWIP_LINK_ROOM + IPSECIF_HEADROOM;
    struct ipsecif_lwip_txbuf *tx;

    if (pkt->len > IPSECIF_LWIP_BUF_SIZE - head) {
        return NULL;
    }
    tx = tx_get(pl);
    if (tx == NULL) {
        return NULL;
    }
    memcpy(tx->mem + head, ipsecif_buf_data(pkt), pkt->len);
    return tx_wrap(pl, tx, head, pkt->len);
}

/* ---- Handing inner packets to lwIP ---- */

/* Packets the core built itself (ICMP errors) and deliveries outside an
 * input call go to lwIP in a transmit buffer, like an outgoing packet. */
static void pend_copy(struct ipsecif_lwip *pl, struct ipsecif_if *ifp,
                      const struct ipsecif_buf *pkt)
{
    struct pbuf *p;

    if (pl->pending != NULL) {
        return;
    }
    p = tx_copy(pl, pkt);
    if (p == NULL) {
        return;
    }
    pl->counters.local_copied++;
    pl->pending = p;
    pl->pending_nif = netif_of(ifp);
}

static void deliver_inner(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    struct ipsecif_lwip *pl = user;
    struct pbuf *p = pl->rx_p;

    if (p == NULL || pl->pending != NULL || pkt->len > p->tot_len) {
        pend_copy(pl, ifp, pkt);
        return;
    }
    if (pkt->base == pl->rx_base && p->next == NULL) {
        /* In place: the inner packet lies inside p's own bytes. */
        if (pbuf_remove_header(p, pkt->off) != 0) {
            return;
        }
    } else {
        /* Processed in the receive buffer: back into the received chain,
         * which is at least as long as the outer packet was. */
        if (pbuf_take(p, ipsecif_buf_data(pkt), (u16_t)pkt->len) != ERR_OK) {
            return;
        }
    }
    pbuf_realloc(p, (u16_t)pkt->len);
    pl->rx_p = NULL;
    pl->pending = p;
    pl->pending_nif = netif_of(ifp);
}

static void deliver_icmp(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    pend_copy(user, ifp, pkt);
}

/* ---- Outer packets out ---- */

/* The outer packet as a pbuf: the transmit buffer it was protected in
 * (zero copies), else a copy in a free one. */
static struct pbuf *tx_pbuf(struct ipsecif_lwip *pl, const struct ipsecif_buf *pkt)
{
    struct ipsecif_lwip_txbuf *tx = tx_of(pl, pkt->base);

    if (tx != NULL && pkt->off >= IPSECIF_LWIP_LINK_ROOM) {
        pl->counters.tx_in_place++;
        return tx_wrap(pl, tx, pkt->off, pkt->len);
    }
    pl->counters.tx_copied++;
    return tx_copy(pl, pkt);
}

#if LWIP_IPV4
static err_t if_output4(struct netif *nif, struct pbuf *p, const ip4_addr_t *dst);
#endif
#if LWIP_IPV6
static err_t if_output6(struct netif *nif, struct pbuf *p, const ip6_addr_t *dst);
#endif

/* Is nif an ipsecif netif (of any port instance)? */
static bool is_tunnel(const struct netif *nif)
{
#if LWIP_IPV4
    if (nif->output == if_output4) {
        return true;
    }
#endif
#if LWIP_IPV6
    if (nif->output_ip6 == if_output6) {
        return true;
    }
#endif
    return false;
}

static int send_outer(void *user, struct ipsecif_if *ifp, const struct ipsecif_outer_meta *meta,
                      const struct ipsecif_buf *pkt)
{
    struct ipsecif_lwip *pl = user;
    struct raw_pcb *pcb = meta->family == IPSECIF_AF_INET6 ? pl->esp6 : pl->esp4;
    struct netif *nif;
    ip_addr_t src;
    ip_addr_t dst;
    struct pbuf *p;
    err_t err;

    (void)ifp;
    if (pcb == NULL || pkt->len > IPSECIF_LWIP_OUTER_MAX) {
        return IPSECIF_ERR_PORT;
    }
    addr_to(&src, &meta->src);
    addr_to(&dst, &meta->dst);
    nif = pl->outer_netif != NULL ? pl->outer_netif : ip_route(&src, &dst);
    if (nif == NULL || is_tunnel(nif)) {
        /* No way out, or back into a tunnel: never loop. */
        return IPSECIF_ERR_PORT;
    }
    p = tx_pbuf(pl, pkt);
    if (p == NULL) {
        return IPSECIF_ERR_PORT;
    }
    /* The core wrote the whole outer header (addresses, TTL, TOS, length,
     * checksum; UDP for NAT-T): the pcb sends it as it is. */
    err = raw_sendto_if_src(pcb, p, &dst, nif, &src);
    pbuf_free(p);
    return err == ERR_OK ? IPSECIF_OK : IPSECIF_ERR_PORT;
}

/* ---- Inner packets out (netif output) ---- */

static err_t if_output(struct netif *nif, struct pbuf *p)
{
    struct ipsecif_lwip_if *lif = nif->state;
    struct ipsecif_lwip *pl = lif->port;
    struct ipsecif_lwip_txbuf *tx;
    struct ipsecif_buf b;
    const size_t head = IPSECIF_LWIP_LINK_ROOM + IPSECIF_HEADROOM;
    int rc;

    if (lif->ifp == NULL || p->tot_len > IPSECIF_LWIP_OUTER_MAX) {
        return ERR_VAL;
    }
    /* Every buffer still held by lwIP (queued for address resolution):
     * dropped and counted, as a driver with a full ring does. */
    tx = tx_get(pl);
    if (tx == NULL) {
        return ERR_MEM;
    }
    b.base = tx->mem;
    b.cap = head + p->tot_len + IPSECIF_TAILROOM;
    b.off = head;
    b.len = pbuf_copy_partial(p, b.base + head, p->tot_len, 0);
    rc = ipsecif_if_output(pl->ctx, lif->ifp, &b, ipsecif_lwip_now(pl));
    if (tx->state == IPSECIF_LWIP_TX_WORK) {
        /* Not sent (dropped by the core, or the send failed). */
        tx->state = IPSECIF_LWIP_TX_FREE;
    }
    flush_pending(pl);
    ipsecif_lwip_rearm(pl);
    switch (rc) {
    case IPSECIF_OK:
    case IPSECIF_ERR_TOOBIG: /* the inner sender got its ICMP error */
        return ERR_OK;
    case IPSECIF_ERR_NOROOM:
        return ERR_BUF;
    case IPSECIF_ERR_DOWN:
        return ERR_IF;
    case IPSECIF_ERR_NOSA:
    case IPSECIF_ERR_DISCARD:
        return ERR_RTE;
    default:
        return ERR_VAL;
    }
}

#if LWIP_IPV4
static err_t if_output4(struct netif *nif, struct pbuf *p, const ip4_addr_t *dst)
{
    (void)dst;
    return if_output(nif, p);
}
#endif

#if LWIP_IPV6
static err_t if_output6(struct netif *nif, struct pbuf *p, const ip6_addr_t *dst)
{
    (void)dst;
    return if_output(nif, p);
}
#endif

/* ---- Outer packets in ---- */

/* Run one received outer packet through the core; p is consumed. full: p
 * starts with the outer IP header (else meta describes it). */
static void rx_packet(struct ipsecif_lwip *pl, struct pbuf *p, bool full,
                      const struct ipsecif_outer_meta *meta)
{
    struct ipsecif_buf b;
    uint64_t now = ipsecif_lwip_now(pl);

    if (p->next == NULL) {
        pl->counters.rx_in_place++;
        b.base = p->payload;
        b.cap = p->len;
        b.off = 0;
        b.len = p->len;
    } else {
        if (p->tot_len > sizeof(pl->rx)) {
            pbuf_free(p);
            return;
        }
        pl->counters.rx_copied++;
        b.base = pl->rx;
        b.cap = sizeof(pl->rx);
        b.off = 0;
        b.len = pbuf_copy_partial(p, pl->rx, p->tot_len, 0);
    }
    pl->rx_p = p;
    pl->rx_base = b.base;
    if (full) {
        (void)ipsecif_input(pl->ctx, &b, now);
    } else {
        (void)ipsecif_input_esp(pl->ctx, meta, &b, now);
    }
    /* Drops are counted by the core, per reason. */
    if (pl->rx_p != NULL) {
        pbuf_free(pl->rx_p);
        pl->rx_p = NULL;
    }
    pl->rx_base = NULL;
    flush_pending(pl);
    ipsecif_lwip_rearm(pl);
}

#if LWIP_IPV6 || IPSECIF_LWIP_NATT
static void meta_from_current(struct ipsecif_outer_meta *m, const ip_addr_t *src)
{
    memset(m, 0, sizeof(*m));
    ipsecif_lwip_addr_from(&m->src, src);
    ipsecif_lwip_addr_from(&m->dst, ip_current_dest_addr());
    m->family = m->src.family;
#if LWIP_IPV6
    if (ip_current_is_v6()) {
        m->tos = (uint8_t)IP6H_TC(ip6_current_header());
        m->ttl = IP6H_HOPLIM(ip6_current_header());
        return;
    }
#endif
#if LWIP_IPV4
    m->tos = IPH_TOS(ip4_current_header());
    m->ttl = IPH_TTL(ip4_current_header());
#endif
}
#endif

#if LWIP_IPV4
/* lwIP hands IPv4 raw pcbs the whole packet, IP header first. */
static u8_t esp4_recv(void *arg, struct raw_pcb *pcb, struct pbuf *p, const ip_addr_t *addr)
{
    (void)pcb;
    (void)addr;
    rx_packet(arg, p, true, NULL);
    return 1;
}
#endif

#if LWIP_IPV6
/* For IPv6, lwIP 2.1 points p at the IPv6 header; RFC 3542 sockets would
 * start after it. Both are accepted: the payload pointer tells. */
static u8_t esp6_recv(void *arg, struct raw_pcb *pcb, struct pbuf *p, const ip_addr_t *addr)
{
    struct ipsecif_outer_meta m;

    (void)pcb;
    if ((const void *)p->payload == (const void *)ip6_current_header()) {
        if (ip_current_header_tot_len() != IP6_HLEN) {
            /* Extension headers: hand the core the ESP part only. */
            if (pbuf_remove_header(p, ip_current_header_tot_len()) != 0) {
                pbuf_free(p);
                return 1;
            }
        } else {
            rx_packet(arg, p, true, NULL);
            return 1;
        }
    }
    meta_from_current(&m, addr);
    rx_packet(arg, p, false, &m);
    return 1;
}
#endif

#if IPSECIF_LWIP_NATT
static void natt_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
                      u16_t port)
{
    struct ipsecif_outer_meta m;

    (void)pcb;
    meta_from_current(&m, addr);
    m.sport = port;
    m.dport = IPSECIF_NATT_PORT;
    rx_packet(arg, p, false, &m);
}
#endif

/* ---- Netifs ---- */

static err_t netif_setup(struct netif *nif)
{
    struct ipsecif_lwip_if *lif = nif->state;

    nif->name[0] = 'i';
    nif->name[1] = 'p';
#if LWIP_IPV4
    nif->output = if_output4;
#endif
#if LWIP_IPV6
    nif->output_ip6 = if_output6;
#endif
    nif->mtu = IPSECIF_MTU_DEFAULT;
#if LWIP_IPV6 && LWIP_ND6_ALLOW_RA_UPDATES
    nif->mtu6 = IPSECIF_MTU_DEFAULT;
#endif
    nif->hwaddr_len = 0;
    /* Point to point, no ARP, no neighbour discovery, no multicast. */
    nif->flags = 0;
    (void)lif;
    return ERR_OK;
}

int ipsecif_lwip_if_create(struct ipsecif_lwip *pl, const char *name, struct ipsecif_lwip_if **out)
{
    struct ipsecif_lwip_if *lif = NULL;
    struct ipsecif_if *ifp = NULL;
    size_t i;
    int rc;

    for (i = 0; i < IPSECIF_LWIP_MAX_IFS; i++) {
        if (pl->ifs[i].ifp == NULL) {
            lif = &pl->ifs[i];
            break;
        }
    }
    if (lif == NULL) {
        return IPSECIF_ERR_FULL;
    }
    rc = ipsecif_if_create(pl->ctx, name, &ifp);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    memset(lif, 0, sizeof(*lif));
    lif->port = pl;
    lif->ifp = ifp;
    if (netif_add_noaddr(&lif->netif, lif, netif_setup, pl->input) == NULL) {
        ipsecif_if_destroy(pl->ctx, ifp);
        lif->ifp = NULL;
        return IPSECIF_ERR_PORT;
    }
    ipsecif_if_set_user(ifp, lif);
    if (out != NULL) {
        *out = lif;
    }
    return IPSECIF_OK;
}

void ipsecif_lwip_if_destroy(struct ipsecif_lwip *pl, struct ipsecif_lwip_if *lif)
{
    if (lif == NULL || lif->ifp == NULL) {
        return;
    }
    netif_remove(&lif->netif);
    ipsecif_if_destroy(pl->ctx, lif->ifp);
    lif->ifp = NULL;
    ipsecif_lwip_rearm(pl);
}

int ipsecif_lwip_if_set_up(struct ipsecif_lwip *pl, struct ipsecif_lwip_if *lif, bool up)
{
    uint32_t flags = ipsecif_if_get_flags(lif->ifp);
    int rc;

    flags = up ? flags | IPSECIF_IFF_UP : flags & ~(uint32_t)IPSECIF_IFF_UP;
    rc = ipsecif_if_set_flags(pl->ctx, lif->ifp, flags, ipsecif_lwip_now(pl));
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (up) {
        netif_set_up(&lif->netif);
        netif_set_link_up(&lif->netif);
    } else {
        netif_set_link_down(&lif->netif);
        netif_set_down(&lif->netif);
    }
    ipsecif_lwip_rearm(pl);
    return IPSECIF_OK;
}

int ipsecif_lwip_if_set_mtu(struct ipsecif_lwip *pl, struct ipsecif_lwip_if *lif, uint32_t mtu)
{
    int rc;

    /* The outer packet (inner + IPsec overhead) must fit the buffers. */
    if (mtu > IPSECIF_LWIP_OUTER_MAX - IPSECIF_HEADROOM - IPSECIF_TAILROOM) {
        return IPSECIF_ERR_RANGE;
    }
    rc = ipsecif_if_set_mtu(pl->ctx, lif->ifp, mtu);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    lif->netif.mtu = (u16_t)mtu;
#if LWIP_IPV6 && LWIP_ND6_ALLOW_RA_UPDATES
    lif->netif.mtu6 = (u16_t)mtu;
#endif
    return IPSECIF_OK;
}

#if LWIP_IPV6
int ipsecif_lwip_if_add_ip6(struct ipsecif_lwip *pl, struct ipsecif_lwip_if *lif,
                            const ip6_addr_t *addr)
{
    struct ipsecif_addr a;
    s8_t idx = -1;

    if (netif_add_ip6_address(&lif->netif, addr, &idx) != ERR_OK || idx < 0) {
        return IPSECIF_ERR_FULL;
    }
    /* No duplicate address detection: the tunnel has one peer. */
    netif_ip6_addr_set_state(&lif->netif, idx, IP6_ADDR_PREFERRED);
    memset(&a, 0, sizeof(a));
    a.family = IPSECIF_AF_INET6;
    memcpy(a.bytes, addr->addr, 16);
    return ipsecif_if_set_local(pl->ctx, lif->ifp, &a);
}
#endif

/* ---- Instance ---- */

static void close_pcbs(struct ipsecif_lwip *pl)
{
    if (pl->esp4 != NULL) {
        raw_remove(pl->esp4);
        pl->esp4 = NULL;
    }
    if (pl->esp6 != NULL) {
        raw_remove(pl->esp6);
        pl->esp6 = NULL;
    }
#if IPSECIF_LWIP_NATT
    if (pl->natt != NULL) {
        udp_remove(pl->natt);
        pl->natt = NULL;
    }
#endif
}

static int open_pcbs(struct ipsecif_lwip *pl)
{
#if LWIP_IPV4
    pl->esp4 = raw_new(IPSECIF_IPPROTO_ESP);
    if (pl->esp4 == NULL) {
        return IPSECIF_ERR_PORT;
    }
    raw_set_flags(pl->esp4, RAW_FLAGS_HDRINCL);
    raw_recv(pl->esp4, esp4_recv, pl);
#endif
#if LWIP_IPV6
    pl->esp6 = raw_new_ip6(IPSECIF_IPPROTO_ESP);
    if (pl->esp6 == NULL) {
        return IPSECIF_ERR_PORT;
    }
    raw_set_flags(pl->esp6, RAW_FLAGS_HDRINCL);
    raw_recv(pl->esp6, esp6_recv, pl);
#endif
#if IPSECIF_LWIP_NATT
    pl->natt = udp_new_ip_type(IPADDR_TYPE_ANY);
    if (pl->natt == NULL || udp_bind(pl->natt, IP_ANY_TYPE, IPSECIF_NATT_PORT) != ERR_OK) {
        return IPSECIF_ERR_PORT;
    }
    udp_recv(pl->natt, natt_recv, pl);
#endif
    return IPSECIF_OK;
}

int ipsecif_lwip_init(struct ipsecif_lwip *pl, void *ctx_mem, size_t ctx_len,
                      const struct ipsecif_config *cfg,
                      int (*random)(void *user, uint8_t *out, size_t len),
                      void (*log)(void *user, int level, const char *msg), netif_input_fn input)
{
    size_t i;
    int rc;

    if (pl == NULL || input == NULL) {
        return IPSECIF_ERR_ARG;
    }
    memset(pl, 0, sizeof(*pl));
    for (i = 0; i < IPSECIF_LWIP_TX_BUFS; i++) {
        pl->tx[i].port = pl;
        pl->tx[i].pc.custom_free_function = tx_free;
    }
    pl->input = input;
    pl->port.send_outer = send_outer;
    pl->port.deliver_inner = deliver_inner;
    pl->port.deliver_icmp = deliver_icmp;
    pl->port.random = random != NULL ? random : ipsecif_crypto_mbedtls_random;
    pl->port.log = log;
    pl->port.crypto = &ipsecif_crypto_mbedtls_ops;
    pl->last_now = sys_now();
    rc = ipsecif_init(&pl->ctx, ctx_mem, ctx_len, cfg, &pl->port, pl, ipsecif_lwip_now(pl));
    if (rc != IPSECIF_OK) {
        pl->ctx = NULL;
        return rc;
    }
    rc = open_pcbs(pl);
    if (rc != IPSECIF_OK) {
        close_pcbs(pl);
        ipsecif_deinit(pl->ctx);
        pl->ctx = NULL;
        return rc;
    }
    arm(pl, ipsecif_lwip_now(pl), ipsecif_next_deadline(pl->ctx));
    return IPSECIF_OK;
}

void ipsecif_lwip_deinit(struct ipsecif_lwip *pl)
{
    size_t i;

    if (pl == NULL || pl->ctx == NULL) {
        return;
    }
    for (i = 0; i < IPSECIF_LWIP_MAX_IFS; i++) {
        ipsecif_lwip_if_destroy(pl, &pl->ifs[i]);
    }
    if (pl->timer_armed) {
        sys_untimeout(timer_fire, pl);
        pl->timer_armed = false;
    }
    close_pcbs(pl);
    ipsecif_deinit(pl->ctx);
    pl->ctx = NULL;
}

void ipsecif_lwip_set_km_event(struct ipsecif_lwip *pl,
                               void (*km_event)(void *user, const struct ipsecif_km_event *ev))
{
    /* The core reads the port struct at each call, so this takes effect at once. */
    pl->port.km_event = km_event;
}

void ipsecif_lwip_set_outer_netif(struct ipsecif_lwip *pl, struct netif *nif)
{
    pl->outer_netif = nif;
}

struct ipsecif_ctx *ipsecif_lwip_ctx(struct ipsecif_lwip *pl)
{
    return pl->ctx;
}

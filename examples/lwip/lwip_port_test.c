/*
 * lwip_port_test: the lwIP port inside a real lwIP stack (Debian's liblwip,
 * tcpip thread build), without root, TAP devices or namespaces.
 *
 * lwIP gets a point-to-point "wire" netif; whatever lwIP sends on it goes
 * to a peer: a second libipsecif context (core only, as in
 * examples/loopback) with the mirror tunnel and SAs. The peer decrypts,
 * turns each inner UDP datagram around (addresses and ports swapped, which
 * keeps every checksum valid), protects the answer and hands it back to
 * lwIP through the wire netif's input. An lwIP UDP pcb sends datagrams to
 * the peer's inner addresses through ipsec0 and counts the echoes.
 *
 * Runs: outer IPv4 and outer IPv6, inner IPv4 and IPv6 each; every second
 * answer is handed to lwIP as a pbuf chain (the port's copy path); a
 * tampered answer must be dropped (authentication) and a replayed one too.
 *
 * Memory: the wire netif can hold what lwIP sends on it, as ARP and
 * neighbour discovery do while a next hop is being resolved; the port must
 * then use its other transmit buffers, drop (and count) a packet when all
 * are held, and send again once they come back, with no packet corrupted.
 * An oversize IPv6 datagram makes the core build a "packet too big" that
 * goes to lwIP in a transmit buffer and comes back. pbuf_alloc, mem_malloc
 * and memp_malloc are wrapped at link time: the port must never call them
 * (the test's own pbufs come from __real_pbuf_alloc). Timer: an idle SA's
 * soft and hard lifetimes (1 s, 2 s) expire through the port's sys_timeout.
 *
 * Two ways to run, as the two kinds of lwIP host do:
 * - (default) lwIP's tcpip thread; inner packets go to lwIP through
 *   tcpip_input(), the test calls in under LOCK_TCPIP_CORE();
 * - --nosys: no tcpip thread, as with NO_SYS=1. lwip_init(), this thread
 *   runs sys_check_timeouts(), and every input is netif_input(), called
 *   directly: lwIP answers inside the port's own calls, which must hold.
 * Exits 0 when every check passes.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"
#include "ipsecif_lwip.h"

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/mem.h"
#include "lwip/memp.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcpip.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"

#define BUF 2048
#define ECHO_PORT 9000
#define ROUNDS 4
#define MAX_HELD 8

/* ---- Allocations by the port, counted through ld --wrap ---- */

struct pbuf *__real_pbuf_alloc(pbuf_layer l, u16_t length, pbuf_type type);
struct pbuf *__wrap_pbuf_alloc(pbuf_layer l, u16_t length, pbuf_type type);
void *__real_mem_malloc(mem_size_t size);
void *__wrap_mem_malloc(mem_size_t size);
void *__real_memp_malloc(memp_t type);
void *__wrap_memp_malloc(memp_t type);

static unsigned port_allocs;

struct pbuf *__wrap_pbuf_alloc(pbuf_layer l, u16_t length, pbuf_type type)
{
    port_allocs++;
    return __real_pbuf_alloc(l, length, type);
}

void *__wrap_mem_malloc(mem_size_t size)
{
    port_allocs++;
    return __real_mem_malloc(size);
}

void *__wrap_memp_malloc(memp_t type)
{
    port_allocs++;
    return __real_memp_malloc(type);
}

/* The test's own pbufs. */
#define test_pbuf_alloc __real_pbuf_alloc

static struct {
    struct netif wire;
    struct ipsecif_lwip port;
    struct ipsecif_lwip_if *lif;
    _Alignas(16) uint8_t ctx_mem[128 * 1024];
    /* The peer. */
    _Alignas(16) uint8_t peer_mem[128 * 1024];
    struct ipsecif_ctx *peer;
    struct ipsecif_if *peer_if;
    uint8_t answer[BUF];
    size_t answer_len;
    uint8_t last_outer[BUF];
    size_t last_outer_len;
    unsigned answers;
    unsigned echoes;
    bool tamper;
    bool hold;                   /* the wire keeps what lwIP sends */
    struct pbuf *held[MAX_HELD]; /* what it keeps */
    unsigned nheld;
    uint64_t soft_at; /* when the test SA's EXPIREs came */
    uint64_t hard_at;
    struct udp_pcb *udp;
} g;

static volatile int tcpip_ready;
static bool nosys;

static void lock(void)
{
    if (!nosys) {
        LOCK_TCPIP_CORE();
    }
}

static void unlock(void)
{
    if (!nosys) {
        UNLOCK_TCPIP_CORE();
    }
}

/* Let ms pass; without a tcpip thread, this thread runs lwIP's timers. */
static void settle(unsigned ms)
{
    unsigned t;

    for (t = 0; t < ms; t += 10) {
        if (nosys) {
            sys_check_timeouts();
        }
        usleep(10000);
    }
}

static err_t lwip_in(struct pbuf *p, struct netif *nif)
{
    return nosys ? netif_input(p, nif) : tcpip_input(p, nif);
}
static int failures;

static void check(bool ok, const char *what)
{
    printf("  %s: %s\n", ok ? "ok" : "FAILED", what);
    if (!ok) {
        failures++;
    }
}

static uint64_t now_ms(void)
{
    return ipsecif_lwip_now(&g.port);
}

static struct ipsecif_addr addr(const char *text)
{
    struct ipsecif_addr a;

    memset(&a, 0, sizeof(a));
    if (inet_pton(AF_INET, text, a.bytes) == 1) {
        a.family = IPSECIF_AF_INET;
    } else if (inet_pton(AF_INET6, text, a.bytes) == 1) {
        a.family = IPSECIF_AF_INET6;
    } else {
        abort();
    }
    return a;
}

/* ---- The peer: a plain libipsecif context ---- */

/* An outer packet from the peer back into lwIP, through the wire netif;
 * every second one as a chain of two pbufs. */
static int peer_send_outer(void *user, struct ipsecif_if *ifp,
                           const struct ipsecif_outer_meta *meta, const struct ipsecif_buf *pkt)
{
    struct pbuf *p;
    u16_t len = (u16_t)pkt->len;

    (void)user;
    (void)ifp;
    (void)meta;
    memcpy(g.last_outer, ipsecif_buf_data(pkt), pkt->len);
    g.last_outer_len = pkt->len;
    if (g.tamper) {
        g.last_outer[pkt->len - 1] ^= 1;
    }
    g.answers++;
    if ((g.answers & 1) == 0 && len > 100) {
        struct pbuf *tail = test_pbuf_alloc(PBUF_RAW, (u16_t)(len - 100), PBUF_RAM);
        p = test_pbuf_alloc(PBUF_RAW, 100, PBUF_RAM);
        if (p == NULL || tail == NULL) {
            abort();
        }
        pbuf_cat(p, tail);
    } else {
        p = test_pbuf_alloc(PBUF_RAW, len, PBUF_POOL);
        if (p == NULL) {
            abort();
        }
    }
    pbuf_take(p, g.last_outer, len);
    if (g.wire.input(p, &g.wire) != ERR_OK) {
        pbuf_free(p);
    }
    return 0;
}

/* Turn an inner UDP datagram around: swap addresses and ports. */
static void peer_deliver(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    uint8_t tmp[16];
    uint8_t *d = g.answer + IPSECIF_HEADROOM;
    size_t hlen;

    (void)user;
    (void)ifp;
    if (pkt->len > BUF - IPSECIF_HEADROOM - IPSECIF_TAILROOM) {
        return;
    }
    memcpy(d, ipsecif_buf_data(pkt), pkt->len);
    g.answer_len = pkt->len;
    if ((d[0] >> 4) == 4) {
        hlen = (size_t)(d[0] & 0xf) * 4;
        memcpy(tmp, d + 12, 4);
        memmove(d + 12, d + 16, 4);
        memcpy(d + 16, tmp, 4);
    } else {
        hlen = 40;
        memcpy(tmp, d + 8, 16);
        memmove(d + 8, d + 24, 16);
        memcpy(d + 24, tmp, 16);
    }
    memcpy(tmp, d + hlen, 2);
    memmove(d + hlen, d + hlen + 2, 2);
    memcpy(d + hlen + 2, tmp, 2);
}

static int peer_random(void *user, uint8_t *out, size_t len)
{
    return ipsecif_crypto_mbedtls_random(user, out, len);
}

static const struct ipsecif_port peer_port = {
    .send_outer = peer_send_outer,
    .deliver_inner = peer_deliver,
    .random = peer_random,
    .crypto = &ipsecif_crypto_mbedtls_ops,
};

/* ---- lwIP side ---- */

/* An outer packet lwIP sent: to the peer, which answers. */
static err_t wire_process(struct pbuf *p)
{
    uint8_t outer[BUF];
    struct ipsecif_buf b;
    int rc;

    if (p->tot_len > sizeof(outer)) {
        return ERR_BUF;
    }
    b.base = outer;
    b.cap = sizeof(outer);
    b.off = 0;
    b.len = pbuf_copy_partial(p, outer, p->tot_len, 0);
    g.answer_len = 0;
    rc = ipsecif_input(g.peer, &b, now_ms());
    if (rc == IPSECIF_OK && g.answer_len != 0) {
        b.base = g.answer;
        b.cap = IPSECIF_HEADROOM + g.answer_len + IPSECIF_TAILROOM;
        b.off = IPSECIF_HEADROOM;
        b.len = g.answer_len;
        ipsecif_if_output(g.peer, g.peer_if, &b, now_ms());
    }
    return ERR_OK;
}

static err_t wire_out(struct netif *nif, struct pbuf *p)
{
    (void)nif;
    if (g.hold && g.nheld < MAX_HELD) {
        /* As an address-resolution queue: by reference, for later. */
        pbuf_ref(p);
        g.held[g.nheld++] = p;
        return ERR_OK;
    }
    return wire_process(p);
}

static err_t wire_out4(struct netif *nif, struct pbuf *p, const ip4_addr_t *dst)
{
    (void)dst;
    return wire_out(nif, p);
}

static err_t wire_out6(struct netif *nif, struct pbuf *p, const ip6_addr_t *dst)
{
    (void)dst;
    return wire_out(nif, p);
}

static err_t wire_init(struct netif *nif)
{
    nif->name[0] = 'w';
    nif->name[1] = 'r';
    nif->output = wire_out4;
    nif->output_ip6 = wire_out6;
    nif->mtu = 1500;
    nif->flags = 0;
    return ERR_OK;
}

static void udp_echo(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *a, u16_t port)
{
    (void)arg;
    (void)pcb;
    (void)a;
    if (port == ECHO_PORT && p->tot_len == 32) {
        g.echoes++;
    }
    pbuf_free(p);
}

static err_t send_udp_len(const char *dst_text, u16_t len)
{
    ip_addr_t dst;
    struct pbuf *p = test_pbuf_alloc(PBUF_TRANSPORT, len, PBUF_RAM);
    err_t err;

    if (p == NULL) {
        abort();
    }
    ipaddr_aton(dst_text, &dst);
    memset(p->payload, 0x5a, len);
    err = udp_sendto(g.udp, p, &dst, ECHO_PORT);
    pbuf_free(p);
    return err;
}

static err_t send_udp(const char *dst_text)
{
    return send_udp_len(dst_text, 32);
}

/* Wait (unlocked) until done() holds, checked under the lock, or ms passed. */
static void wait_until(bool (*done)(void), unsigned ms)
{
    unsigned t;

    for (t = 0; t < ms; t += 10) {
        lock();
        bool ok = done();
        unlock();
        if (ok) {
            return;
        }
        settle(10);
    }
}

static unsigned echo_target;

static bool echoes_done(void)
{
    return g.echoes >= echo_target;
}

/* Until n echoes arrived or a second passed. */
static void wait_echoes(unsigned n)
{
    echo_target = n;
    wait_until(echoes_done, 1000);
}

/* An AES-GCM-16 SA keyed with keybyte, added at now (ms), with soft and
 * hard add-time lifetimes in seconds (0: none). */
static void sa_lt(struct ipsecif_ctx *ctx, uint32_t spi, const struct ipsecif_addr *src,
                  const struct ipsecif_addr *dst, uint32_t reqid, uint8_t keybyte, uint64_t soft,
                  uint64_t hard, uint64_t now)
{
    struct ipsecif_sa_params p;
    uint8_t key[20];

    memset(key, keybyte, sizeof(key));
    memset(&p, 0, sizeof(p));
    p.proto = IPSECIF_IPPROTO_ESP;
    p.mode = IPSECIF_MODE_TRANSPORT;
    p.ealg = IPSECIF_EALG_AES_GCM16;
    p.spi = spi;
    p.src = *src;
    p.dst = *dst;
    p.reqid = reqid;
    p.replay_window = 64;
    p.ekey = key;
    p.ekey_len = sizeof(key);
    p.soft.addtime = soft;
    p.hard.addtime = hard;
    if (ipsecif_sa_add(ctx, &p, now) != IPSECIF_OK) {
        abort();
    }
}

static void sa(struct ipsecif_ctx *ctx, uint32_t spi, const struct ipsecif_addr *src,
               const struct ipsecif_addr *dst, uint32_t reqid, uint8_t keybyte)
{
    sa_lt(ctx, spi, src, dst, reqid, keybyte, 0, 0, now_ms());
}

static void km_event(void *user, const struct ipsecif_km_event *ev)
{
    (void)user;
    if (ev->type != IPSECIF_KM_EXPIRE || ev->expire.sa.params.spi != 0x3000) {
        return;
    }
    if (ev->expire.hard) {
        g.hard_at = now_ms();
    } else {
        g.soft_at = now_ms();
    }
}

/* The core's timer through the port's one sys_timeout: an idle SA with a
 * soft lifetime of 1 s and a hard one of 2 s expires on time, reported
 * through the port's km_event, and is gone. */
static bool hard_done(void)
{
    return g.hard_at != 0;
}

static void expiry(const struct ipsecif_addr *l, const struct ipsecif_addr *r)
{
    struct ipsecif_sa_info info;
    uint64_t t0;

    lock();
    ipsecif_lwip_set_km_event(&g.port, km_event);
    g.soft_at = 0;
    g.hard_at = 0;
    t0 = now_ms();
    /* Added at t0: every check below counts from there. */
    sa_lt(ipsecif_lwip_ctx(&g.port), 0x3000, l, r, 0, 7, 1, 2, t0);
    ipsecif_lwip_rearm(&g.port);
    check(g.port.timer_armed && g.port.armed_at <= t0 + 1000,
          "the timer was brought forward to the soft lifetime");
    unlock();
    wait_until(hard_done, 6000);
    lock();
    printf("  soft EXPIRE after %llu ms, hard after %llu ms\n",
           (unsigned long long)(g.soft_at != 0 ? g.soft_at - t0 : 0),
           (unsigned long long)(g.hard_at != 0 ? g.hard_at - t0 : 0));
    check(g.soft_at >= t0 + 1000 && g.soft_at < t0 + 2000, "soft EXPIRE after 1 s");
    check(g.hard_at >= t0 + 2000 && g.hard_at < t0 + 3500, "hard EXPIRE after 2 s");
    check(ipsecif_sa_get(ipsecif_lwip_ctx(&g.port), IPSECIF_IPPROTO_ESP, l, r, 0x3000, &info) ==
              IPSECIF_ERR_NOENT,
          "the SA is gone");
    ipsecif_lwip_set_km_event(&g.port, NULL);
    unlock();
}

/* lwIP keeps what it sent (an address being resolved): the port takes its
 * other buffers, then drops one packet and counts it; the held packets go
 * out intact later, and the buffers come back. */
static void hold_buffers(void)
{
    const unsigned n = IPSECIF_LWIP_TX_BUFS;
    uint32_t no_buf0;
    unsigned before;
    err_t last = ERR_OK;
    unsigned i;

    lock();
    no_buf0 = g.port.counters.tx_no_buf;
    before = g.echoes;
    g.hold = true;
    g.nheld = 0;
    for (i = 0; i <= n; i++) {
        last = send_udp(i % 2 == 0 ? "203.0.113.2" : "2001:db8:2::2");
    }
    printf("  held by the wire: %u of %u transmit buffers; %u dropped (last send: %d)\n", g.nheld,
           n, (unsigned)(g.port.counters.tx_no_buf - no_buf0), (int)last);
    check(g.nheld == n, "each buffer went out once while lwIP held the others");
    check(g.port.counters.tx_no_buf - no_buf0 == 1,
          "one packet dropped and counted, none allocated");
    check(last == ERR_MEM, "the sender was told (ERR_MEM)");
    check(g.port.counters.tx_held_max == n, "the high-water mark shows every buffer held");
    g.hold = false;
    /* Resolved: the queue goes out, then lets go of its references. */
    for (i = 0; i < g.nheld; i++) {
        wire_process(g.held[i]);
        pbuf_free(g.held[i]);
        g.held[i] = NULL;
    }
    check(g.port.tx_held == 0, "every buffer came back");
    unlock();
    wait_echoes(before + n);
    lock();
    check(g.echoes == before + n, "the held packets were delivered intact");
    send_udp("203.0.113.2");
    unlock();
    wait_echoes(before + n + 1);
    lock();
    check(g.echoes == before + n + 1, "sending works again once the buffers came back");
    check(g.port.counters.tx_no_buf - no_buf0 == 1, "no further drop");
    unlock();
}

/* An IPv6 datagram over the core's MTU (the netif's MTU raised behind its
 * back): the core's "packet too big" reaches lwIP in a transmit buffer,
 * which comes back when lwIP has read it. */
static void too_big(void)
{
    const struct ipsecif_stats *st;
    uint32_t local0;
    uint64_t toobig0;

    lock();
    st = ipsecif_stats_get(ipsecif_lwip_ctx(&g.port));
    local0 = g.port.counters.local_copied;
    toobig0 = st->out_toobig;
    g.lif->netif.mtu = 1400;
    g.lif->netif.mtu6 = 1400;
    send_udp_len("2001:db8:2::2", 1300);
    g.lif->netif.mtu = IPSECIF_MTU_DEFAULT;
    g.lif->netif.mtu6 = IPSECIF_MTU_DEFAULT;
    unlock();
    settle(200);
    lock();
    check(st->out_toobig == toobig0 + 1, "the core refused the oversize packet");
    check(g.port.counters.local_copied == local0 + 1,
          "its packet too big went to lwIP in a transmit buffer");
    check(g.port.tx_held == 0, "lwIP gave that buffer back");
    unlock();
}

static void run(const char *local, const char *remote)
{
    struct ipsecif_config cfg;
    struct ipsecif_addr l = addr(local);
    struct ipsecif_addr r = addr(remote);
    struct ipsecif_if_info li;
    struct ipsecif_if_info pi;
    const struct ipsecif_stats *st;
    ip_addr_t a;
    unsigned before;

    printf("outer %s <-> %s\n", local, remote);
    lock();
    ipsecif_config_default(&cfg);
    cfg.max_interfaces = 1;
    cfg.max_policies = 8;
    cfg.max_sas = 5; /* 4 for the tunnel, 1 to expire */
    cfg.replay_window_max = 64;
    if (ipsecif_lwip_init(&g.port, g.ctx_mem, sizeof(g.ctx_mem), &cfg, NULL, NULL, lwip_in) !=
            IPSECIF_OK ||
        ipsecif_init(&g.peer, g.peer_mem, sizeof(g.peer_mem), &cfg, &peer_port, NULL, now_ms()) !=
            IPSECIF_OK) {
        abort();
    }
    ipsecif_lwip_set_outer_netif(&g.port, &g.wire);
    if (ipsecif_lwip_if_create(&g.port, "ipsec0", &g.lif) != IPSECIF_OK ||
        ipsecif_if_set_tunnel(ipsecif_lwip_ctx(&g.port), g.lif->ifp, &l, 0, &r, 0, now_ms()) !=
            IPSECIF_OK ||
        ipsecif_if_create(g.peer, "ipsec0", &g.peer_if) != IPSECIF_OK ||
        ipsecif_if_set_tunnel(g.peer, g.peer_if, &r, 0, &l, 0, now_ms()) != IPSECIF_OK ||
        ipsecif_if_set_flags(g.peer, g.peer_if, IPSECIF_IFF_UP | IPSECIF_IFF_LINK2, now_ms()) !=
            IPSECIF_OK) {
        abort();
    }
    ipsecif_if_get_info(ipsecif_lwip_ctx(&g.port), g.lif->ifp, &li);
    ipsecif_if_get_info(g.peer, g.peer_if, &pi);
    sa(ipsecif_lwip_ctx(&g.port), 0x1000, &l, &r, li.reqid[IPSECIF_IFPOL_V4_OUT], 1);
    sa(ipsecif_lwip_ctx(&g.port), 0x1001, &r, &l, li.reqid[IPSECIF_IFPOL_V4_IN], 2);
    sa(ipsecif_lwip_ctx(&g.port), 0x2000, &l, &r, li.reqid[IPSECIF_IFPOL_V6_OUT], 3);
    sa(ipsecif_lwip_ctx(&g.port), 0x2001, &r, &l, li.reqid[IPSECIF_IFPOL_V6_IN], 4);
    sa(g.peer, 0x1000, &l, &r, pi.reqid[IPSECIF_IFPOL_V4_IN], 1);
    sa(g.peer, 0x1001, &r, &l, pi.reqid[IPSECIF_IFPOL_V4_OUT], 2);
    sa(g.peer, 0x2000, &l, &r, pi.reqid[IPSECIF_IFPOL_V6_IN], 3);
    sa(g.peer, 0x2001, &r, &l, pi.reqid[IPSECIF_IFPOL_V6_OUT], 4);
    ipaddr_aton("192.0.2.2", &a);
    netif_set_addr(&g.lif->netif, ip_2_ip4(&a), netif_ip4_netmask(&g.wire), IP4_ADDR_ANY4);
    ipaddr_aton("2001:db8:1::2", &a);
    ipsecif_lwip_if_add_ip6(&g.port, g.lif, ip_2_ip6(&a));
    ipsecif_lwip_if_set_up(&g.port, g.lif, true);
    ipsecif_lwip_rearm(&g.port);
    netif_set_default(&g.lif->netif);
    g.echoes = 0;
    g.answers = 0;
    unlock();

    for (int i = 0; i < ROUNDS; i++) {
        lock();
        send_udp("203.0.113.2");
        send_udp("2001:db8:2::2");
        if (nosys && i == 0) {
            /* Out through the port and the wire, the peer's answer in
             * through the port: all inside udp_sendto(). */
            check(g.echoes == 2, "both echoes arrived inside the sends (synchronous input)");
        }
        unlock();
        wait_echoes((unsigned)(2 * (i + 1)));
    }
    lock();
    check(g.echoes == 2 * ROUNDS, "every datagram came back through ipsec0 (IPv4 and IPv6)");
    check(g.port.counters.rx_in_place > 0, "answers in one pbuf were decrypted in place");
    check(g.port.counters.rx_copied > 0, "answers in a pbuf chain were copied and delivered");
    printf("  port: %u decrypted in place, %u copied; %u sent in place, %u copied\n",
           (unsigned)g.port.counters.rx_in_place, (unsigned)g.port.counters.rx_copied,
           (unsigned)g.port.counters.tx_in_place, (unsigned)g.port.counters.tx_copied);
    check(g.port.counters.tx_in_place >= 2 * ROUNDS, "outer packets sent from their own buffer");
    check(g.port.counters.tx_copied == 0, "and never copied again");

    /* The peer's last answer once more: the replay window drops it. */
    before = g.echoes;
    {
        struct pbuf *p = test_pbuf_alloc(PBUF_RAW, (u16_t)g.last_outer_len, PBUF_POOL);
        pbuf_take(p, g.last_outer, (u16_t)g.last_outer_len);
        g.wire.input(p, &g.wire);
    }
    g.tamper = true;
    send_udp("203.0.113.2");
    unlock();
    settle(300);
    lock();
    g.tamper = false;
    st = ipsecif_stats_get(ipsecif_lwip_ctx(&g.port));
    check(g.echoes == before, "a replayed and a tampered answer were not delivered");
    check(st->in_replay == 1, "one replay counted");
    check(st->in_auth == 1, "one authentication failure counted");
    unlock();

    hold_buffers();
    too_big();
    if (l.family == IPSECIF_AF_INET) {
        expiry(&l, &r);
    }

    lock();
    ipsecif_deinit(g.peer);
    g.peer = NULL;
    ipsecif_lwip_deinit(&g.port);
    unlock();
}

static void tcpip_done(void *arg)
{
    (void)arg;
    tcpip_ready = 1;
}

int main(int argc, char **argv)
{
    ip_addr_t a;
    s8_t idx;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "--nosys") == 0) {
        nosys = true;
    } else if (argc != 1) {
        fprintf(stderr, "usage: lwip_port_test [--nosys]\n");
        return 2;
    }
    printf("lwIP %s\n", nosys ? "without a tcpip thread (as NO_SYS=1): synchronous input"
                              : "with its tcpip thread: input through tcpip_input()");
    if (nosys) {
        lwip_init();
    } else {
        tcpip_init(tcpip_done, NULL);
        while (!tcpip_ready) {
            usleep(1000);
        }
    }
    lock();
    if (netif_add_noaddr(&g.wire, NULL, wire_init, lwip_in) == NULL) {
        abort();
    }
    ipaddr_aton("198.51.100.2", &a);
    {
        ip4_addr_t mask;
        IP4_ADDR(&mask, 255, 255, 255, 0);
        netif_set_addr(&g.wire, ip_2_ip4(&a), &mask, IP4_ADDR_ANY4);
    }
    ipaddr_aton("2001:db8:100::2", &a);
    netif_add_ip6_address(&g.wire, ip_2_ip6(&a), &idx);
    netif_ip6_addr_set_state(&g.wire, idx, IP6_ADDR_PREFERRED);
    netif_set_up(&g.wire);
    netif_set_link_up(&g.wire);
    g.udp = udp_new_ip_type(IPADDR_TYPE_ANY);
    udp_bind(g.udp, IP_ANY_TYPE, 0);
    udp_recv(g.udp, udp_echo, NULL);
    unlock();

    run("198.51.100.2", "198.51.100.1");
    run("2001:db8:100::2", "2001:db8:100::1");

    lock();
    udp_remove(g.udp);
    netif_remove(&g.wire);
    unlock();
    printf("pbuf_alloc, mem_malloc, memp_malloc called by the port: %u\n", port_allocs);
    check(port_allocs == 0, "the port allocated nothing from lwIP");
    printf("%s\n", failures == 0 ? "lwip_port_test: all checks passed" : "lwip_port_test: FAILED");
    return failures == 0 ? 0 : 1;
}

/*
 * lwip_node: a small device on lwIP (Debian's liblwip, the tcpip thread
 * build) with an ipsecif tunnel to a peer such as the example router.
 *
 * The device's Ethernet is a TAP device of the host; lwIP owns its
 * addresses. ipsec0 is an lwIP netif (the lwIP port of libipsecif) with the
 * device's inner addresses; it is the default netif, so everything that is
 * not on the TAP link goes through the tunnel. lwIP answers pings on every
 * address itself; a TCP echo service (raw API) listens on port 7. With -c,
 * the device also connects out through the tunnel, sends a line and checks
 * that it comes back; with -p it pings out and waits for the reply.
 *
 * usage: lwip_node -t TAP -a ADDR/PLEN [-g GW] -L LOCAL -R REMOTE [-4 ADDR] [-6 ADDR]
 *                  -k SAFILE [-c ADDR:PORT]... [-p ADDR]... [-s] [-n]
 *   -a     the device's address on the TAP link (IPv4 a.b.c.d/n or IPv6 x::y/n;
 *          may be given once per family)
 *   -L -R  tunnel source (the device) and destination (the peer), same family
 *   -4 -6  the device's inner addresses on ipsec0
 *   -k     manual SAs, one a line: "out|in 4|6 SPI aes-gcm-16 HEXKEY" (key with
 *          its 4-byte salt), bound to ipsec0's policies of that direction and
 *          inner family, as setkey's "-u <unique id>" does
 *   -c     TCP client check (IPv6 as [x::y]:port)
 *   -p     ping check
 *   -s     hand received frames to lwIP as a chain of two pbufs (the port
 *          then copies instead of decrypting in place)
 *   -n     NAT-Traversal (link0): ESP in UDP, port 4500 on both sides
 * Prints "ready" when the tunnel is up, "tcp ADDR: echo ok" and "ping ADDR:
 * reply" when a check passes. SIGTERM or SIGINT: tear down, exit 0.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"
#include "ipsecif_lwip.h"

#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/inet_chksum.h"
#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip6_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/prot/icmp.h"
#include "lwip/prot/icmp6.h"
#include "lwip/raw.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

#define MAX_CHECKS 4
#define FRAME_MAX 1600
#define ECHO_PORT 7
#define SPLIT_AT 128
#define CHECK_LINE "ipsecif over lwIP\n"

struct check {
    ip_addr_t addr;
    u16_t port;
    bool ok;
    size_t got;
    struct tcp_pcb *pcb;
};

static struct {
    int tap_fd;
    struct netif tap;
    struct ipsecif_lwip port;
    struct ipsecif_lwip_if *lif;
    _Alignas(16) uint8_t ctx_mem[256 * 1024];
    struct check tcp[MAX_CHECKS];
    size_t n_tcp;
    struct check ping[MAX_CHECKS];
    size_t n_ping;
    struct raw_pcb *icmp4;
    struct raw_pcb *icmp6;
    u16_t ping_seq;
} g;

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t tcpip_ready;
static bool split_frames;
static bool natt;

static void say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "lwip_node: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* An address as text, lower case like the rest of the world writes IPv6. */
static const char *addr_text(const ip_addr_t *a)
{
    static char buf[IPADDR_STRLEN_MAX];
    char *c;

    ipaddr_ntoa_r(a, buf, sizeof(buf));
    for (c = buf; *c != 0; c++) {
        if (*c >= 'A' && *c <= 'F') {
            *c = (char)(*c - 'A' + 'a');
        }
    }
    return buf;
}

/* ---- TAP driver ---- */

static int tap_open(const char *name)
{
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        die("/dev/net/tun: %s", strerror(errno));
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        die("TUNSETIFF %s: %s", name, strerror(errno));
    }
    return fd;
}

static err_t tap_linkoutput(struct netif *nif, struct pbuf *p)
{
    uint8_t frame[FRAME_MAX];
    u16_t n;

    (void)nif;
    if (p->tot_len > sizeof(frame)) {
        return ERR_BUF;
    }
    n = pbuf_copy_partial(p, frame, p->tot_len, 0);
    if (write(g.tap_fd, frame, n) != (ssize_t)n) {
        return ERR_IF;
    }
    return ERR_OK;
}

static err_t tap_netif_init(struct netif *nif)
{
    static const uint8_t mac[6] = {0x02, 0x00, 0x5e, 0x00, 0x53, 0x01};

    nif->name[0] = 't';
    nif->name[1] = 'p';
    nif->output = etharp_output;
    nif->output_ip6 = ethip6_output;
    nif->linkoutput = tap_linkoutput;
    nif->mtu = 1500;
    nif->hwaddr_len = 6;
    memcpy(nif->hwaddr, mac, 6);
    nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_MLD6;
    return ERR_OK;
}

/* Read what the TAP device has and hand it to the tcpip thread. */
static void tap_read(void)
{
    uint8_t frame[FRAME_MAX];
    ssize_t n = read(g.tap_fd, frame, sizeof(frame));
    struct pbuf *p;

    if (n <= 0) {
        return;
    }
    if (split_frames && n > SPLIT_AT) {
        /* Two pieces, as a driver with small pool buffers would deliver
         * (lwIP wants the headers in the first). */
        struct pbuf *tail = pbuf_alloc(PBUF_RAW, (u16_t)(n - SPLIT_AT), PBUF_RAM);
        p = pbuf_alloc(PBUF_RAW, SPLIT_AT, PBUF_RAM);
        if (p == NULL || tail == NULL) {
            if (p != NULL) {
                pbuf_free(p);
            }
            if (tail != NULL) {
                pbuf_free(tail);
            }
            return;
        }
        pbuf_cat(p, tail);
    } else {
        p = pbuf_alloc(PBUF_RAW, (u16_t)n, PBUF_POOL);
        if (p == NULL) {
            return;
        }
    }
    pbuf_take(p, frame, (u16_t)n);
    if (g.tap.input(p, &g.tap) != ERR_OK) {
        pbuf_free(p);
    }
}

/* ---- TCP echo service (raw API) ---- */

static err_t echo_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct pbuf *q;

    (void)arg;
    if (p == NULL || err != ERR_OK) {
        if (p != NULL) {
            pbuf_free(p);
        }
        tcp_arg(pcb, NULL);
        tcp_recv(pcb, NULL);
        return tcp_close(pcb);
    }
    for (q = p; q != NULL; q = q->next) {
        if (tcp_write(pcb, q->payload, q->len, TCP_WRITE_FLAG_COPY) != ERR_OK) {
            break;
        }
    }
    tcp_output(pcb);
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

static err_t echo_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    (void)arg;
    if (err != ERR_OK || pcb == NULL) {
        return ERR_VAL;
    }
    tcp_recv(pcb, echo_recv);
    return ERR_OK;
}

static void echo_start(void)
{
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);

    if (pcb == NULL || tcp_bind(pcb, IP_ANY_TYPE, ECHO_PORT) != ERR_OK) {
        die("tcp echo: bind");
    }
    pcb = tcp_listen(pcb);
    if (pcb == NULL) {
        die("tcp echo: listen");
    }
    tcp_accept(pcb, echo_accept);
}

/* ---- Outgoing checks: a TCP line echoed back, a ping answered ---- */

static err_t client_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct check *c = arg;
    char buf[64];
    u16_t n;

    if (p == NULL || err != ERR_OK) {
        if (p != NULL) {
            pbuf_free(p);
        }
        tcp_arg(pcb, NULL);
        tcp_recv(pcb, NULL);
        tcp_err(pcb, NULL);
        c->pcb = NULL;
        tcp_close(pcb);
        return ERR_OK;
    }
    n = pbuf_copy_partial(p, buf, sizeof(buf) - 1, 0);
    buf[n] = 0;
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    if (c->got + n <= strlen(CHECK_LINE) && memcmp(buf, &CHECK_LINE[c->got], n) == 0) {
        c->got += n;
    }
    if (!c->ok && c->got == strlen(CHECK_LINE)) {
        c->ok = true;
        say("tcp %s: echo ok", addr_text(&c->addr));
        tcp_arg(pcb, NULL);
        tcp_recv(pcb, NULL);
        tcp_err(pcb, NULL);
        c->pcb = NULL;
        tcp_close(pcb);
    }
    return ERR_OK;
}

static void client_err(void *arg, err_t err)
{
    struct check *c = arg;

    (void)err;
    c->pcb = NULL;
}

static err_t client_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    (void)arg;
    if (err != ERR_OK) {
        return err;
    }
    tcp_write(pcb, CHECK_LINE, (u16_t)strlen(CHECK_LINE), TCP_WRITE_FLAG_COPY);
    tcp_output(pcb);
    return ERR_OK;
}

static void client_try(struct check *c)
{
    if (c->ok) {
        return;
    }
    if (c->pcb != NULL) {
        /* Still trying: start over. */
        tcp_arg(c->pcb, NULL);
        tcp_err(c->pcb, NULL);
        tcp_recv(c->pcb, NULL);
        tcp_abort(c->pcb);
        c->pcb = NULL;
    }
    c->got = 0;
    c->pcb = tcp_new_ip_type(IP_GET_TYPE(&c->addr));
    if (c->pcb == NULL) {
        return;
    }
    tcp_arg(c->pcb, c);
    tcp_recv(c->pcb, client_recv);
    tcp_err(c->pcb, client_err);
    if (tcp_connect(c->pcb, &c->addr, c->port, client_connected) != ERR_OK) {
        tcp_arg(c->pcb, NULL);
        tcp_abort(c->pcb);
        c->pcb = NULL;
    }
}

#define PING_ID 0x4c57

static void ping_send(struct check *c)
{
    struct pbuf *p;
    uint8_t *b;
    const u16_t len = 8 + 16;
    u16_t i;

    if (c->ok) {
        return;
    }
    p = pbuf_alloc(PBUF_IP, len, PBUF_RAM);
    if (p == NULL) {
        return;
    }
    b = p->payload;
    memset(b, 0, len);
    b[0] = IP_IS_V6(&c->addr) ? ICMP6_TYPE_EREQ : ICMP_ECHO;
    b[4] = PING_ID >> 8;
    b[5] = PING_ID & 0xff;
    g.ping_seq++;
    b[6] = (uint8_t)(g.ping_seq >> 8);
    b[7] = (uint8_t)g.ping_seq;
    for (i = 8; i < len; i++) {
        b[i] = (uint8_t)i;
    }
    if (IP_IS_V6(&c->addr)) {
        /* lwIP fills the ICMPv6 checksum (chksum_reqd on the pcb). */
        raw_sendto(g.icmp6, p, &c->addr);
    } else {
        /* inet_chksum() gives the sum as it lies in memory. */
        u16_t sum = inet_chksum(b, len);
        memcpy(b + 2, &sum, sizeof(sum));
        raw_sendto(g.icmp4, p, &c->addr);
    }
    pbuf_free(p);
}

/* Echo replies to our identifier; anything else goes on to lwIP. */
static u8_t ping_recv(void *arg, struct raw_pcb *pcb, struct pbuf *p, const ip_addr_t *addr)
{
    uint8_t h[8];
    u16_t off = 0;
    size_t i;
    bool v6 = IP_IS_V6(addr);

    (void)arg;
    (void)pcb;
    if (!v6 || (const void *)p->payload == (const void *)ip6_current_header()) {
        off = (u16_t)ip_current_header_tot_len();
    }
    if (pbuf_copy_partial(p, h, sizeof(h), off) != sizeof(h)) {
        return 0;
    }
    if (h[0] != (v6 ? ICMP6_TYPE_EREP : ICMP_ER) || h[4] != (PING_ID >> 8) ||
        h[5] != (PING_ID & 0xff)) {
        return 0;
    }
    for (i = 0; i < g.n_ping; i++) {
        if (!g.ping[i].ok && ip_addr_cmp(&g.ping[i].addr, addr)) {
            g.ping[i].ok = true;
            say("ping %s: reply", addr_text(addr));
        }
    }
    pbuf_free(p);
    return 1;
}

static void checks_tick(void *arg)
{
    size_t i;

    (void)arg;
    for (i = 0; i < g.n_tcp; i++) {
        client_try(&g.tcp[i]);
    }
    for (i = 0; i < g.n_ping; i++) {
        ping_send(&g.ping[i]);
    }
    sys_timeout(1000, checks_tick, NULL);
}

/* ---- Configuration ---- */

struct opts {
    const char *tap;
    const char *addr[2];
    int n_addr;
    const char *gw;
    const char *local;
    const char *remote;
    const char *in4;
    const char *in6;
    const char *safile;
};

static void parse_addr(const char *text, ip_addr_t *out)
{
    if (!ipaddr_aton(text, out)) {
        die("bad address %s", text);
    }
}

static void parse_hostport(const char *text, struct check *c)
{
    char buf[80];
    char *colon;

    snprintf(buf, sizeof(buf), "%s", text);
    colon = strrchr(buf, ':');
    if (colon == NULL) {
        die("bad ADDR:PORT %s", text);
    }
    *colon = 0;
    c->port = (u16_t)atoi(colon + 1);
    if (buf[0] == '[') {
        size_t n = strlen(buf);
        if (n < 2 || buf[n - 1] != ']') {
            die("bad [ADDR]:PORT %s", text);
        }
        buf[n - 1] = 0;
        parse_addr(buf + 1, &c->addr);
    } else {
        parse_addr(buf, &c->addr);
    }
}

static size_t hex_key(const char *text, uint8_t *out, size_t cap)
{
    size_t n = 0;

    if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        text += 2;
    }
    while (text[0] != 0 && text[1] != 0 && n < cap) {
        unsigned v;
        if (sscanf(text, "%2x", &v) != 1) {
            die("bad key");
        }
        out[n++] = (uint8_t)v;
        text += 2;
    }
    return n;
}

static void load_sas(const char *path)
{
    FILE *f = fopen(path, "r");
    struct ipsecif_ctx *ctx = ipsecif_lwip_ctx(&g.port);
    struct ipsecif_if_info info;
    char line[256];
    int lineno = 0;

    if (f == NULL) {
        die("%s: %s", path, strerror(errno));
    }
    if (ipsecif_if_get_info(ctx, g.lif->ifp, &info) != IPSECIF_OK) {
        die("ipsecif_if_get_info");
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char dir[8];
        char alg[32];
        char keytext[160];
        unsigned fam;
        unsigned long spi;
        uint8_t key[64];
        struct ipsecif_sa_params p;
        bool out;
        int rc;

        lineno++;
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        if (sscanf(line, "%7s %u %lx %31s %159s", dir, &fam, &spi, alg, keytext) != 5 ||
            (fam != 4 && fam != 6) || strcmp(alg, "aes-gcm-16") != 0) {
            die("%s line %d: want \"out|in 4|6 SPI aes-gcm-16 HEXKEY\"", path, lineno);
        }
        out = strcmp(dir, "out") == 0;
        memset(&p, 0, sizeof(p));
        p.proto = IPSECIF_IPPROTO_ESP;
        p.mode = IPSECIF_MODE_TRANSPORT;
        p.ealg = IPSECIF_EALG_AES_GCM16;
        p.spi = (uint32_t)spi;
        p.src = out ? info.src : info.dst;
        p.dst = out ? info.dst : info.src;
        p.reqid = info.reqid[fam == 4 ? (out ? IPSECIF_IFPOL_V4_OUT : IPSECIF_IFPOL_V4_IN)
                                      : (out ? IPSECIF_IFPOL_V6_OUT : IPSECIF_IFPOL_V6_IN)];
        p.replay_window = 64;
        if (natt) {
            p.natt_sport = IPSECIF_NATT_PORT;
            p.natt_dport = IPSECIF_NATT_PORT;
        }
        p.ekey = key;
        p.ekey_len = hex_key(keytext, key, sizeof(key));
        rc = ipsecif_sa_add(ctx, &p, ipsecif_lwip_now(&g.port));
        memset(key, 0, sizeof(key));
        memset(keytext, 0, sizeof(keytext));
        if (rc != IPSECIF_OK) {
            die("%s line %d: ipsecif_sa_add: %s", path, lineno, ipsecif_strerror(rc));
        }
        say("SA %s inner IPv%u spi 0x%08lx unique id %u", dir, fam, spi, p.reqid);
    }
    memset(line, 0, sizeof(line));
    fclose(f);
}

static void tap_addr(const char *text)
{
    char buf[80];
    char *slash;
    int plen;
    ip_addr_t a;

    snprintf(buf, sizeof(buf), "%s", text);
    slash = strchr(buf, '/');
    if (slash == NULL) {
        die("-a wants ADDR/PLEN");
    }
    *slash = 0;
    plen = atoi(slash + 1);
    parse_addr(buf, &a);
    if (IP_IS_V6(&a)) {
        s8_t idx;
        if (netif_add_ip6_address(&g.tap, ip_2_ip6(&a), &idx) != ERR_OK) {
            die("netif_add_ip6_address");
        }
        netif_ip6_addr_set_state(&g.tap, idx, IP6_ADDR_PREFERRED);
    } else {
        ip4_addr_t mask;
        ip4_addr_set_u32(&mask, plen == 0 ? 0 : lwip_htonl(0xffffffffu << (32 - plen)));
        netif_set_addr(&g.tap, ip_2_ip4(&a), &mask, netif_ip4_gw(&g.tap));
    }
}

/* Runs with the core lock held. */
static void setup(const struct opts *o)
{
    struct ipsecif_config cfg;
    struct ipsecif_addr src;
    struct ipsecif_addr dst;
    ip_addr_t a;
    size_t need;
    int rc;
    int i;

    /* The outer link. */
    if (netif_add_noaddr(&g.tap, NULL, tap_netif_init, tcpip_input) == NULL) {
        die("netif_add (tap)");
    }
    netif_create_ip6_linklocal_address(&g.tap, 1);
    netif_ip6_addr_set_state(&g.tap, 0, IP6_ADDR_PREFERRED);
    for (i = 0; i < o->n_addr; i++) {
        tap_addr(o->addr[i]);
    }
    if (o->gw != NULL) {
        parse_addr(o->gw, &a);
        netif_set_gw(&g.tap, ip_2_ip4(&a));
    }
    netif_set_up(&g.tap);
    netif_set_link_up(&g.tap);

    /* The tunnel. */
    ipsecif_config_default(&cfg);
    cfg.max_interfaces = 2;
    cfg.max_policies = 16;
    cfg.max_sas = 8;
    cfg.replay_window_max = 64;
    need = ipsecif_ctx_size(&cfg);
    if (need == 0 || need > sizeof(g.ctx_mem)) {
        die("context needs %zu bytes", need);
    }
    rc = ipsecif_lwip_init(&g.port, g.ctx_mem, sizeof(g.ctx_mem), &cfg, NULL, NULL, tcpip_input);
    if (rc != IPSECIF_OK) {
        die("ipsecif_lwip_init: %s", ipsecif_strerror(rc));
    }
    /* Outer packets leave through the TAP link, whatever the default netif. */
    ipsecif_lwip_set_outer_netif(&g.port, &g.tap);
    rc = ipsecif_lwip_if_create(&g.port, "ipsec0", &g.lif);
    if (rc != IPSECIF_OK) {
        die("ipsecif_lwip_if_create: %s", ipsecif_strerror(rc));
    }
    parse_addr(o->local, &a);
    ipsecif_lwip_addr_from(&src, &a);
    parse_addr(o->remote, &a);
    ipsecif_lwip_addr_from(&dst, &a);
    rc = ipsecif_if_set_tunnel(ipsecif_lwip_ctx(&g.port), g.lif->ifp, &src, 0, &dst, 0,
                               ipsecif_lwip_now(&g.port));
    if (rc != IPSECIF_OK) {
        die("ipsecif_if_set_tunnel: %s", ipsecif_strerror(rc));
    }
    if (o->in4 != NULL) {
        ip4_addr_t mask;
        parse_addr(o->in4, &a);
        ip4_addr_set_u32(&mask, 0xffffffffu);
        netif_set_addr(&g.lif->netif, ip_2_ip4(&a), &mask, IP4_ADDR_ANY4);
        ipsecif_lwip_addr_from(&src, &a);
        ipsecif_if_set_local(ipsecif_lwip_ctx(&g.port), g.lif->ifp, &src);
    }
    if (o->in6 != NULL) {
        parse_addr(o->in6, &a);
        if (ipsecif_lwip_if_add_ip6(&g.port, g.lif, ip_2_ip6(&a)) != IPSECIF_OK) {
            die("inner IPv6 address");
        }
    }
    if (natt) {
        /* link0: ESP in UDP 4500; the policies become "require". */
        rc = ipsecif_if_set_flags(ipsecif_lwip_ctx(&g.port), g.lif->ifp,
                                  ipsecif_if_get_flags(g.lif->ifp) | IPSECIF_IFF_LINK0,
                                  ipsecif_lwip_now(&g.port));
        if (rc != IPSECIF_OK) {
            die("link0: %s", ipsecif_strerror(rc));
        }
    }
    load_sas(o->safile);
    rc = ipsecif_lwip_if_set_up(&g.port, g.lif, true);
    if (rc != IPSECIF_OK) {
        die("ipsecif_lwip_if_set_up: %s", ipsecif_strerror(rc));
    }
    ipsecif_lwip_rearm(&g.port);
    netif_set_default(&g.lif->netif);

    echo_start();
    g.icmp4 = raw_new(IP_PROTO_ICMP);
    g.icmp6 = raw_new_ip6(IP6_NEXTH_ICMP6);
    if (g.icmp4 == NULL || g.icmp6 == NULL) {
        die("raw pcbs");
    }
    g.icmp6->chksum_reqd = 1;
    g.icmp6->chksum_offset = 2;
    raw_recv(g.icmp4, ping_recv, NULL);
    raw_recv(g.icmp6, ping_recv, NULL);
    sys_timeout(500, checks_tick, NULL);
    say("ready: ipsec0 %s -> %s, mtu %u", o->local, o->remote, g.lif->netif.mtu);
}

static void teardown(void)
{
    size_t i;

    sys_untimeout(checks_tick, NULL);
    for (i = 0; i < g.n_tcp; i++) {
        if (g.tcp[i].pcb != NULL) {
            tcp_arg(g.tcp[i].pcb, NULL);
            tcp_abort(g.tcp[i].pcb);
        }
    }
    ipsecif_lwip_deinit(&g.port);
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void tcpip_done(void *arg)
{
    (void)arg;
    tcpip_ready = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: lwip_node -t TAP -a ADDR/PLEN [-g GW] -L LOCAL -R REMOTE [-4 ADDR] "
                    "[-6 ADDR] -k SAFILE [-c ADDR:PORT]... [-p ADDR]... [-s] [-n]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o;
    struct sigaction sa;
    int c;

    memset(&o, 0, sizeof(o));
    while ((c = getopt(argc, argv, "t:a:g:L:R:4:6:k:c:p:sn")) != -1) {
        switch (c) {
        case 't':
            o.tap = optarg;
            break;
        case 'a':
            if (o.n_addr == 2) {
                usage();
            }
            o.addr[o.n_addr++] = optarg;
            break;
        case 'g':
            o.gw = optarg;
            break;
        case 'L':
            o.local = optarg;
            break;
        case 'R':
            o.remote = optarg;
            break;
        case '4':
            o.in4 = optarg;
            break;
        case '6':
            o.in6 = optarg;
            break;
        case 'k':
            o.safile = optarg;
            break;
        case 'c':
            if (g.n_tcp == MAX_CHECKS) {
                usage();
            }
            parse_hostport(optarg, &g.tcp[g.n_tcp++]);
            break;
        case 's':
            split_frames = true;
            break;
        case 'n':
            natt = true;
            break;
        case 'p':
            if (g.n_ping == MAX_CHECKS) {
                usage();
            }
            parse_addr(optarg, &g.ping[g.n_ping++].addr);
            break;
        default:
            usage();
        }
    }
    if (o.tap == NULL || o.n_addr == 0 || o.local == NULL || o.remote == NULL || o.safile == NULL) {
        usage();
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    g.tap_fd = tap_open(o.tap);
    tcpip_init(tcpip_done, NULL);
    while (!tcpip_ready) {
        usleep(1000);
    }
    LOCK_TCPIP_CORE();
    setup(&o);
    UNLOCK_TCPIP_CORE();

    while (!stop_flag) {
        struct pollfd pfd = {.fd = g.tap_fd, .events = POLLIN};
        if (poll(&pfd, 1, 200) > 0 && (pfd.revents & POLLIN)) {
            tap_read();
        }
    }

    LOCK_TCPIP_CORE();
    say("port: %u outer packets decrypted in place, %u copied from a chain; "
        "%u sent in place, %u copied; %u dropped with every transmit buffer held "
        "(at most %u held at once)",
        (unsigned)g.port.counters.rx_in_place, (unsigned)g.port.counters.rx_copied,
        (unsigned)g.port.counters.tx_in_place, (unsigned)g.port.counters.tx_copied,
        (unsigned)g.port.counters.tx_no_buf, (unsigned)g.port.counters.tx_held_max);
    teardown();
    UNLOCK_TCPIP_CORE();
    close(g.tap_fd);
    say("stopped");
    return 0;
}

/*
 * libFuzzer target: arbitrary bytes through the host-traffic path
 * (lib/core/host.c) of a context with transport and tunnel policies, a
 * bundle, a per-socket bypass and their SAs. The first byte picks what the
 * rest is: a received packet (ipsecif_host_input, or ipsecif_input which
 * dispatches to it) in a buffer of exactly its size, or a packet to send
 * (ipsecif_host_output); a packet that went out protected is fed back in
 * (the context holds the SAs of both ends), and when that succeeds it must
 * give back the packet as it was, IPv4 header checksum aside. Except an
 * IP-in-IP packet protected in transport mode: under an SA of mode any
 * the receiver takes ESP or AH carrying IP for tunnel mode (as NetBSD
 * does), so it gives back the inner packet.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD 256
#define TAIL 64

static struct ipsecif_ctx *ctx;
static uint64_t now = 1000;
static bool foreign;

static int send_outer(void *user, struct ipsecif_if *ifp, const struct ipsecif_outer_meta *meta,
                      const struct ipsecif_buf *pkt)
{
    (void)user;
    (void)ifp;
    (void)meta;
    (void)pkt;
    return 0;
}

static void touch(const struct ipsecif_buf *b)
{
    volatile uint8_t sink = 0;
    size_t i;

    for (i = 0; i < b->len; i++) {
        sink ^= b->base[b->off + i];
    }
    (void)sink;
}

static void deliver_inner(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    (void)user;
    (void)ifp;
    touch(pkt);
}

static void deliver_host(void *user, const struct ipsecif_buf *pkt,
                         const struct ipsecif_host_result *res)
{
    (void)user;
    (void)res;
    touch(pkt);
}

static bool local_addr(void *user, const struct ipsecif_addr *a)
{
    (void)user;
    (void)a;
    return !foreign;
}

static int rnd(void *user, uint8_t *out, size_t len)
{
    (void)user;
    memset(out, 0x5a, len);
    return 0;
}

static const struct ipsecif_port port = {
    .send_outer = send_outer,
    .deliver_inner = deliver_inner,
    .random = rnd,
    .crypto = &ipsecif_crypto_mbedtls_ops,
    .deliver_host = deliver_host,
    .local_addr = local_addr,
};

static struct ipsecif_addr addr(uint8_t family, uint8_t last, uint8_t net)
{
    struct ipsecif_addr a;

    memset(&a, 0, sizeof(a));
    a.family = family;
    if (family == IPSECIF_AF_INET) {
        a.bytes[0] = 192;
        a.bytes[1] = 0;
        a.bytes[2] = 2;
        a.bytes[3] = (uint8_t)(net + last);
    } else {
        a.bytes[0] = 0x20;
        a.bytes[1] = 0x01;
        a.bytes[2] = 0x0d;
        a.bytes[3] = 0xb8;
        a.bytes[5] = net;
        a.bytes[15] = last;
    }
    return a;
}

static void sa(uint8_t proto, uint8_t family, uint32_t spi, uint32_t flags)
{
    static const uint8_t key[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
    struct ipsecif_sa_params p;

    memset(&p, 0, sizeof(p));
    p.proto = proto;
    p.spi = spi;
    p.src = addr(family, 1, 0);
    p.dst = addr(family, 2, 0);
    p.replay_window = 128;
    p.flags = flags;
    if (proto == IPSECIF_IPPROTO_ESP) {
        p.ealg = IPSECIF_EALG_AES_GCM16;
        p.ekey = key;
        p.ekey_len = 20;
    } else {
        p.aalg = IPSECIF_AALG_HMAC_SHA2_256_128;
        p.akey = key;
        p.akey_len = 32;
    }
    if (ipsecif_sa_add(ctx, &p, now) != IPSECIF_OK) {
        abort();
    }
}

/* An out and an in policy for src/plen -> dst/plen, both with the requests. */
static void pols(struct ipsecif_addr s, struct ipsecif_addr d, uint8_t plen, uint8_t p1, uint8_t p2,
                 uint8_t mode, uint8_t family)
{
    struct ipsecif_policy po;
    int dir;

    memset(&po, 0, sizeof(po));
    po.sel.src = s;
    po.sel.dst = d;
    po.sel.src_plen = plen;
    po.sel.dst_plen = plen;
    po.sel.ulproto = IPSECIF_IPPROTO_ANY;
    po.action = IPSECIF_ACTION_IPSEC;
    po.priority = IPSECIF_PRIORITY_DEFAULT;
    po.nreq = p2 != 0 ? 2 : 1;
    po.req[0].proto = p1;
    po.req[1].proto = p2;
    po.req[0].mode = po.req[1].mode = mode;
    po.req[0].level = po.req[1].level = IPSECIF_LEVEL_REQUIRE;
    if (mode == IPSECIF_MODE_TUNNEL) {
        po.req[0].tun_src = addr(family, 1, 0);
        po.req[0].tun_dst = addr(family, 2, 0);
    }
    for (dir = IPSECIF_DIR_IN; dir <= IPSECIF_DIR_OUT; dir++) {
        po.dir = (uint8_t)dir;
        if (ipsecif_spd_add(ctx, &po, now, NULL) != IPSECIF_OK) {
            abort();
        }
    }
}

static void setup(void)
{
    struct ipsecif_config cfg;
    struct ipsecif_sockpolicy bp;
    struct ipsecif_sock s;
    size_t need;
    void *mem;

    ipsecif_config_default(&cfg);
    need = ipsecif_ctx_size(&cfg);
    mem = aligned_alloc(64, (need + 63) & ~(size_t)63);
    if (mem == NULL || ipsecif_init(&ctx, mem, need, &cfg, &port, NULL, now) != IPSECIF_OK) {
        abort();
    }
    /* IPv4: ESP + AH bundle in transport mode between .1 and .2; IPv6:
     * ESP transport with ESN; 192.0.2.64/26 -> 192.0.2.128/26 in an AH
     * tunnel over IPv6, 2001:db8:0:10::/64 -> 2001:db8:0:20::/64 in an
     * ESP tunnel over IPv4. */
    sa(IPSECIF_IPPROTO_ESP, IPSECIF_AF_INET, 0x101, 0);
    sa(IPSECIF_IPPROTO_AH, IPSECIF_AF_INET, 0x102, 0);
    sa(IPSECIF_IPPROTO_ESP, IPSECIF_AF_INET6, 0x103, IPSECIF_SA_F_ESN);
    sa(IPSECIF_IPPROTO_AH, IPSECIF_AF_INET6, 0x104, 0);
    pols(addr(IPSECIF_AF_INET, 1, 0), addr(IPSECIF_AF_INET, 2, 0), 32, IPSECIF_IPPROTO_ESP,
         IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, IPSECIF_AF_INET);
    pols(addr(IPSECIF_AF_INET6, 1, 0), addr(IPSECIF_AF_INET6, 2, 0), 128, IPSECIF_IPPROTO_ESP, 0,
         IPSECIF_MODE_TRANSPORT, IPSECIF_AF_INET6);
    pols(addr(IPSECIF_AF_INET, 0, 64), addr(IPSECIF_AF_INET, 0, 128), 26, IPSECIF_IPPROTO_AH, 0,
         IPSECIF_MODE_TUNNEL, IPSECIF_AF_INET6);
    pols(addr(IPSECIF_AF_INET6, 0, 0x10), addr(IPSECIF_AF_INET6, 0, 0x20), 64, IPSECIF_IPPROTO_ESP,
         0, IPSECIF_MODE_TUNNEL, IPSECIF_AF_INET);
    memset(&s, 0, sizeof(s));
    s.owner = 1;
    s.handle = 1;
    s.proto = IPSECIF_IPPROTO_UDP;
    s.local.family = IPSECIF_AF_INET;
    s.lport = 500;
    memset(&bp, 0, sizeof(bp));
    bp.type = IPSECIF_SOCKPOL_BYPASS;
    bp.dir = IPSECIF_DIR_OUT;
    if (ipsecif_spd_sock_set(ctx, &s, &bp) != IPSECIF_OK) {
        abort();
    }
}

static void as_input(const uint8_t *pkt, size_t len, bool dispatch)
{
    uint8_t *mem = malloc(HEAD + len + 1);
    struct ipsecif_buf b = {mem, HEAD + len, HEAD, len};

    if (mem == NULL) {
        abort();
    }
    memcpy(mem + HEAD, pkt, len);
    if (dispatch) {
        (void)ipsecif_input(ctx, &b, now);
    } else if (ipsecif_host_input(ctx, &b, now, NULL) == IPSECIF_OK) {
        touch(&b);
    }
    free(mem);
}

/* Equal but for the IPv4 header checksum the library may have fixed. */
static bool same(const uint8_t *a, const uint8_t *b, size_t len)
{
    if (len >= 20 && (a[0] >> 4) == 4) {
        return memcmp(a, b, 10) == 0 && memcmp(a + 12, b + 12, len - 12) == 0;
    }
    return memcmp(a, b, len) == 0;
}

/* Does the packet carry IPv4 or IPv6 as its upper layer (after the IPv6
 * hop-by-hop, routing and destination options headers)? */
static bool carries_ip(const uint8_t *p, size_t len)
{
    size_t off = 40;
    uint8_t nh;

    if (len >= 20 && (p[0] >> 4) == 4) {
        return p[9] == 4 || p[9] == 41;
    }
    if (len < 40 || (p[0] >> 4) != 6) {
        return false;
    }
    nh = p[6];
    while ((nh == 0 || nh == 43 || nh == 60) && len - off >= 8) {
        size_t hl = ((size_t)p[off + 1] + 1) * 8;

        nh = p[off];
        if (hl > len - off) {
            return false;
        }
        off += hl;
    }
    return nh == 4 || nh == 41;
}

static void as_output(const uint8_t *pkt, size_t len)
{
    size_t cap = HEAD + len + TAIL;
    uint8_t *mem = malloc(cap);
    struct ipsecif_buf b = {mem, cap, HEAD, len};
    struct ipsecif_host_result r;

    if (mem == NULL) {
        abort();
    }
    memcpy(mem + HEAD, pkt, len);
    if (ipsecif_host_output(ctx, &b, now, &r) == IPSECIF_OK) {
        touch(&b);
        if (r.verdict == IPSECIF_HOST_PROTECTED && !(r.tunnels == 0 && carries_ip(pkt, len))) {
            uint8_t *copy = malloc(len);
            struct ipsecif_buf in;

            if (copy == NULL) {
                abort();
            }
            memcpy(copy, pkt, len);
            in = b;
            /* The packet may have been trimmed to its header's length. */
            if (ipsecif_host_input(ctx, &in, now, NULL) == IPSECIF_OK &&
                (in.len > len || !same(in.base + in.off, copy, in.len))) {
                abort();
            }
            free(copy);
        }
    }
    free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;

    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1) {
        return 0;
    }
    now += 1;
    foreign = (data[0] & 0x80) != 0;
    switch (data[0] & 3) {
    case 0:
        as_input(data + 1, size - 1, false);
        break;
    case 1:
        as_input(data + 1, size - 1, true);
        break;
    default:
        as_output(data + 1, size - 1);
        break;
    }
    return 0;
}

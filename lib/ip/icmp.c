/* ICMP "fragmentation needed" and ICMPv6 "packet too big" for the sender
 * of an inner packet the tunnel cannot carry. */
#include "ip/ip.h"

#define ICMP_HLEN 8

/* ICMP errors stay small enough for any path: RFC 1812 section 4.3.2.3
 * (576 bytes) and RFC 4443 section 2.4 (the IPv6 minimum MTU). */
#define ICMP4_MAX 576
#define ICMP6_MAX 1280

/* Sources that name no single host get no ICMP error (RFC 1122 3.2.2,
 * RFC 1812 4.3.2.7). */
static bool v4_src_ok(const uint8_t *a)
{
    return a[0] != 0 && a[0] != 127 && a[0] < 224;
}

static bool v4_dst_multi(const uint8_t *a)
{
    return a[0] >= 224;
}

static bool v4_icmp_is_error(uint8_t type)
{
    return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

/* Whether the IPv4 packet p[0..len) may get an ICMP error: IPSECIF_OK,
 * IPSECIF_ERR_MALFORMED or IPSECIF_ERR_DISCARD. */
static int check4(const uint8_t *p, size_t len)
{
    size_t ihl;

    if (len < IPSECIF_IP4_HLEN) {
        return IPSECIF_ERR_MALFORMED;
    }
    ihl = (size_t)(p[0] & 0x0f) * 4;
    if (ihl < IPSECIF_IP4_HLEN || ihl > len) {
        return IPSECIF_ERR_MALFORMED;
    }
    /* Only the first fragment names the upper layer (RFC 1122 3.2.2). */
    if ((ipsecif_load16(p + 6) & 0x1fff) != 0) {
        return IPSECIF_ERR_DISCARD;
    }
    if (!v4_src_ok(p + 12) || v4_dst_multi(p + 16)) {
        return IPSECIF_ERR_DISCARD;
    }
    if (p[9] == IPSECIF_IPPROTO_ICMP && (len == ihl || v4_icmp_is_error(p[ihl]))) {
        return IPSECIF_ERR_DISCARD;
    }
    return IPSECIF_OK;
}

/* The IPv4 and ICMP headers at h, in front of quote bytes of the packet. */
static void write4(uint8_t *h, size_t tot, const uint8_t *src, const uint8_t *dst, uint32_t mtu,
                   size_t quote)
{
    uint8_t *icmp = h + IPSECIF_IP4_HLEN;

    h[0] = 0x45;
    h[1] = 0;
    ipsecif_store16(h + 2, (uint16_t)tot);
    /* Atomic datagram (DF, id 0; RFC 6864): it is small enough for any path. */
    ipsecif_store16(h + 4, 0);
    ipsecif_store16(h + 6, 0x4000);
    h[8] = IPSECIF_DEFAULT_TTL;
    h[9] = IPSECIF_IPPROTO_ICMP;
    memcpy(h + 12, src, 4);
    memcpy(h + 16, dst, 4);
    ipsecif_ip4_set_csum(h, IPSECIF_IP4_HLEN);

    /* Type 3 code 4 with the next-hop MTU (RFC 1191 section 4). */
    icmp[0] = 3;
    icmp[1] = 4;
    ipsecif_store16(icmp + 2, 0);
    ipsecif_store16(icmp + 4, 0);
    ipsecif_store16(icmp + 6, (uint16_t)(mtu > 0xffffu ? 0xffffu : mtu));
    ipsecif_store16(icmp + 2, ipsecif_csum_fold(ipsecif_csum_add(0, icmp, ICMP_HLEN + quote)));
}

/* Room made for the IP and ICMP headers, the sender's address (alen bytes at
 * src_off) kept in osrc, the packet trimmed to the quote an error of at most
 * max bytes carries and the headers pushed: where they go, or NULL without
 * headroom. */
static uint8_t *frame(struct ipsecif_buf *pkt, size_t hlen, size_t max, size_t src_off, size_t alen,
                      uint8_t *osrc, size_t *quote)
{
    size_t len = pkt->len;

    if (!ipsecif_buf_room(pkt, hlen + ICMP_HLEN, 0)) {
        return NULL;
    }
    memcpy(osrc, ipsecif_buf_data(pkt) + src_off, alen);
    *quote = len < max - hlen - ICMP_HLEN ? len : max - hlen - ICMP_HLEN;
    ipsecif_buf_trim(pkt, len - *quote);
    return ipsecif_buf_push(pkt, hlen + ICMP_HLEN);
}

static int toobig4(struct ipsecif_buf *pkt, const struct ipsecif_addr *src, uint32_t mtu)
{
    size_t quote;
    uint8_t osrc[4];
    uint8_t *h;
    int rc;

    if (src->family != IPSECIF_AF_INET) {
        return IPSECIF_ERR_ARG;
    }
    rc = check4(ipsecif_buf_data(pkt), pkt->len);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    h = frame(pkt, IPSECIF_IP4_HLEN, ICMP4_MAX, 12, 4, osrc, &quote);
    if (h == NULL) {
        return IPSECIF_ERR_NOROOM;
    }
    write4(h, pkt->len, src->bytes, osrc, mtu, quote);
    return IPSECIF_OK;
}

static bool v6_unspec(const uint8_t *a)
{
    uint8_t any = 0;
    size_t i;

    for (i = 0; i < 16; i++) {
        any |= a[i];
    }
    return any == 0;
}

/* Whether the IPv6 packet p[0..len) may get an ICMPv6 error: IPSECIF_OK,
 * IPSECIF_ERR_MALFORMED or IPSECIF_ERR_DISCARD. */
static int check6(const uint8_t *p, size_t len)
{
    size_t end;
    struct ipsecif_v6chain c;

    if (len < IPSECIF_IP6_HLEN) {
        return IPSECIF_ERR_MALFORMED;
    }
    /* Unspecified or multicast sources name no single host (RFC 4443 2.4 e). */
    if (p[8] == 0xff || v6_unspec(p + 8)) {
        return IPSECIF_ERR_DISCARD;
    }
    end = IPSECIF_IP6_HLEN + (size_t)ipsecif_load16(p + 4);
    if (end > len) {
        end = len;
    }
    if (!ipsecif_v6_walk(p, end, &c)) {
        return IPSECIF_ERR_MALFORMED;
    }
    if (c.frag && c.frag_off != 0) {
        return IPSECIF_ERR_DISCARD;
    }
    /* ICMPv6 errors are types 0..127 (RFC 4443 section 2.1). */
    if (c.nh == IPSECIF_IPPROTO_ICMPV6 && (c.off >= end || p[c.off] < 128)) {
        return IPSECIF_ERR_DISCARD;
    }
    return IPSECIF_OK;
}

/* The IPv6 and ICMPv6 headers at h, in front of quote bytes of the packet. */
static void write6(uint8_t *h, const uint8_t *src, const uint8_t *dst, uint32_t mtu, size_t quote)
{
    uint8_t *icmp = h + IPSECIF_IP6_HLEN;
    uint32_t sum;

    h[0] = 0x60;
    h[1] = 0;
    h[2] = 0;
    h[3] = 0;
    ipsecif_store16(h + 4, (uint16_t)(ICMP_HLEN + quote));
    h[6] = IPSECIF_IPPROTO_ICMPV6;
    h[7] = IPSECIF_DEFAULT_TTL;
    memcpy(h + 8, src, 16);
    memcpy(h + 24, dst, 16);

    /* Packet Too Big: type 2, code 0, MTU (RFC 4443 section 3.2). */
    icmp[0] = 2;
    icmp[1] = 0;
    ipsecif_store16(icmp + 2, 0);
    ipsecif_store32(icmp + 4, mtu);
    sum = ipsecif_v6_pseudo(h + 8, h + 24, (uint32_t)(ICMP_HLEN + quote), IPSECIF_IPPROTO_ICMPV6);
    ipsecif_store16(icmp + 2, ipsecif_csum_fold(ipsecif_csum_add(sum, icmp, ICMP_HLEN + quote)));
}

static int toobig6(struct ipsecif_buf *pkt, const struct ipsecif_addr *src, uint32_t mtu)
{
    size_t quote;
    uint8_t osrc[16];
    uint8_t *h;
    int rc;

    if (src->family != IPSECIF_AF_INET6) {
        return IPSECIF_ERR_ARG;
    }
    rc = check6(ipsecif_buf_data(pkt), pkt->len);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    h = frame(pkt, IPSECIF_IP6_HLEN, ICMP6_MAX, 8, 16, osrc, &quote);
    if (h == NULL) {
        return IPSECIF_ERR_NOROOM;
    }
    write6(h, src->bytes, osrc, mtu, quote);
    return IPSECIF_OK;
}

IPSECIF_COLD int ipsecif_icmp_toobig(struct ipsecif_buf *pkt, const struct ipsecif_addr *src,
                                     uint32_t mtu)
{
    const uint8_t *p;

    if (!ipsecif_buf_valid(pkt) || src == NULL) {
        return IPSECIF_ERR_ARG;
    }
    if (pkt->len < 1) {
        return IPSECIF_ERR_MALFORMED;
    }
    p = ipsecif_buf_data(pkt);
    if ((p[0] >> 4) == 4) {
        return toobig4(pkt, src, mtu);
    }
    if ((p[0] >> 4) == 6) {
        return toobig6(pkt, src, mtu);
    }
    return IPSECIF_ERR_MALFORMED;
}

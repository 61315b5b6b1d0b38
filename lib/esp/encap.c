/*
 * Outer headers: ECN across the tunnel (RFC 6040), the outer IPv4/IPv6
 * header with optional UDP encapsulation (RFC 3948), parsing of received
 * outer headers, and ICMP "packet too big" errors for the inner sender.
 */
#include "ipsecif_priv.h"

#define IP4_HLEN 20
#define IP6_HLEN 40
#define UDP_HLEN 8
#define ICMP_HLEN 8
#define DEFAULT_TTL 64

/* ECN codepoints (RFC 3168). */
#define ECN_MASK 0x03u
#define ECN_NOT_ECT 0x00u
#define ECN_ECT1 0x01u
#define ECN_ECT0 0x02u
#define ECN_CE 0x03u

/* IPv6 extension headers we walk (RFC 8200). */
#define IP6_HOPOPTS 0
#define IP6_ROUTING 43
#define IP6_FRAGMENT 44
#define IP6_DSTOPTS 60

/* ICMP errors stay small enough for any path: RFC 1812 section 4.3.2.3
 * (576 bytes) and RFC 4443 section 2.4 (the IPv6 minimum MTU). */
#define ICMP4_MAX 576
#define ICMP6_MAX 1280

/*
 * RFC 6040 section 4.1. The outer header takes the inner TOS byte (the
 * DSCP is copied as gif(4) and ipsecif(4) do); normal mode keeps the ECN
 * field, compatibility mode clears it to Not-ECT. Returns the outer TOS.
 */
uint8_t ipsecif_ecn_encap(uint8_t inner_tos, bool ecn_friendly)
{
    if (ecn_friendly) {
        return inner_tos;
    }
    return (uint8_t)(inner_tos & ~ECN_MASK);
}

/*
 * RFC 6040 section 4.2, Figure 4. Returns the inner TOS byte to forward
 * (DSCP unchanged, ECN combined), or -1 to drop (CE over Not-ECT).
 */
int ipsecif_ecn_decap(uint8_t outer_tos, uint8_t inner_tos)
{
    uint8_t outer = outer_tos & ECN_MASK;
    uint8_t inner = inner_tos & ECN_MASK;
    uint8_t ecn = inner;

    if (outer == ECN_CE) {
        if (inner == ECN_NOT_ECT) {
            return -1;
        }
        ecn = ECN_CE;
    } else if (outer == ECN_ECT1 && inner == ECN_ECT0) {
        ecn = ECN_ECT1;
    }
    return (int)((inner_tos & ~ECN_MASK) | ecn);
}

/* One's complement sum of the IPv6 pseudo-header (RFC 8200 section 8.1). */
static uint32_t pseudo6(const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t nh)
{
    uint32_t sum = 0;

    sum = ipsecif_csum_add(sum, src, 16);
    sum = ipsecif_csum_add(sum, dst, 16);
    sum += len >> 16;
    sum += len & 0xffffu;
    sum += nh;
    return sum;
}

int ipsecif_encap_outer(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                        const struct ipsecif_addr *src, const struct ipsecif_addr *dst,
                        uint16_t sport, uint16_t dport, uint8_t tos, bool df,
                        struct ipsecif_outer_meta *meta)
{
    bool udp = sport != 0 || dport != 0;
    size_t iphl, need, esp_len;
    uint8_t proto = udp ? IPSECIF_IPPROTO_UDP : IPSECIF_IPPROTO_ESP;
    uint8_t ttl;
    uint8_t *h;

    if (ctx == NULL || pkt == NULL || src == NULL || dst == NULL || meta == NULL) {
        return IPSECIF_ERR_ARG;
    }
    if (src->family != dst->family) {
        return IPSECIF_ERR_ARG;
    }
    if (src->family == IPSECIF_AF_INET) {
        iphl = IP4_HLEN;
    } else if (src->family == IPSECIF_AF_INET6) {
        iphl = IP6_HLEN;
    } else {
        return IPSECIF_ERR_ARG;
    }
    esp_len = pkt->len;
    need = iphl + (udp ? UDP_HLEN : 0);
    /* The length fields are 16 bits (IPv4: the whole packet, IPv6: the payload). */
    if (esp_len > 0xffffu - (need - (src->family == IPSECIF_AF_INET6 ? IP6_HLEN : 0))) {
        return IPSECIF_ERR_ARG;
    }
    if (ipsecif_buf_headroom(pkt) < need) {
        return IPSECIF_ERR_NOROOM;
    }
    ttl = ctx->cfg.ttl != 0 ? ctx->cfg.ttl : DEFAULT_TTL;
    h = ipsecif_buf_push(pkt, need);

    if (udp) {
        uint8_t *u = h + iphl;

        ipsecif_store16(u, sport);
        ipsecif_store16(u + 2, dport);
        ipsecif_store16(u + 4, (uint16_t)(UDP_HLEN + esp_len));
        /* IPv4: no checksum, ESP protects the content (RFC 3948 section 2.1). */
        ipsecif_store16(u + 6, 0);
    }
    if (src->family == IPSECIF_AF_INET) {
        h[0] = 0x45;
        h[1] = tos;
        ipsecif_store16(h + 2, (uint16_t)(need + esp_len));
        ipsecif_store16(h + 4, ctx->ip_id++);
        ipsecif_store16(h + 6, df ? 0x4000 : 0);
        h[8] = ttl;
        h[9] = proto;
        ipsecif_store16(h + 10, 0);
        memcpy(h + 12, src->bytes, 4);
        memcpy(h + 16, dst->bytes, 4);
        ipsecif_store16(h + 10, ipsecif_csum_fold(ipsecif_csum_add(0, h, IP4_HLEN)));
    } else {
        h[0] = (uint8_t)(0x60 | (tos >> 4));
        h[1] = (uint8_t)(tos << 4);
        h[2] = 0;
        h[3] = 0;
        ipsecif_store16(h + 4, (uint16_t)(need - IP6_HLEN + esp_len));
        h[6] = proto;
        h[7] = ttl;
        memcpy(h + 8, src->bytes, 16);
        memcpy(h + 24, dst->bytes, 16);
        if (udp) {
            /* IPv6 requires a UDP checksum (RFC 8200 section 8.1). */
            uint32_t ulen = (uint32_t)(UDP_HLEN + esp_len);
            uint32_t sum = pseudo6(src->bytes, dst->bytes, ulen, IPSECIF_IPPROTO_UDP);
            uint16_t c = ipsecif_csum_fold(ipsecif_csum_add(sum, h + IP6_HLEN, ulen));

            ipsecif_store16(h + IP6_HLEN + 6, c == 0 ? 0xffff : c);
        }
    }

    memset(meta, 0, sizeof(*meta));
    meta->family = src->family;
    meta->src = *src;
    meta->dst = *dst;
    meta->ttl = ttl;
    meta->tos = tos;
    meta->ip_hlen = (uint16_t)iphl;
    meta->sport = udp ? sport : 0;
    meta->dport = udp ? dport : 0;
    meta->esp_off = (uint16_t)need;
    return IPSECIF_OK;
}

/* Where an IPv6 extension header chain leads. */
struct v6chain {
    uint8_t nh;        /* first header that is not hop-by-hop, routing, dest opts, fragment */
    size_t off;        /* its offset */
    bool frag;         /* a fragment header was crossed */
    uint16_t frag_off; /* its fragment offset (8-byte units) */
    bool in_transit;   /* a routing header still has segments left */
};

/*
 * Walk the extension headers of the IPv6 packet p[0..end). Stops at the
 * first other header, or after a fragment header of a non-first fragment
 * (what follows is not a header). Returns false on a truncated or misplaced
 * header.
 */
static bool v6_walk(const uint8_t *p, size_t end, struct v6chain *c)
{
    uint8_t nh = p[6];
    size_t off = IP6_HLEN;

    memset(c, 0, sizeof(*c));
    for (;;) {
        size_t hl;

        if (nh == IP6_FRAGMENT) {
            if (end - off < 8) {
                return false;
            }
            c->frag = true;
            c->frag_off = (uint16_t)(ipsecif_load16(p + off + 2) >> 3);
            nh = p[off];
            off += 8;
            if (c->frag_off != 0) {
                break;
            }
            continue;
        }
        if (nh != IP6_HOPOPTS && nh != IP6_ROUTING && nh != IP6_DSTOPTS) {
            break;
        }
        /* Hop-by-hop options may only follow the IPv6 header (RFC 8200 4.3). */
        if (nh == IP6_HOPOPTS && off != IP6_HLEN) {
            return false;
        }
        if (end - off < 8) {
            return false;
        }
        hl = ((size_t)p[off + 1] + 1) * 8;
        if (end - off < hl) {
            return false;
        }
        if (nh == IP6_ROUTING && p[off + 3] != 0) {
            c->in_transit = true;
        }
        nh = p[off];
        off += hl;
    }
    c->nh = nh;
    c->off = off;
    return true;
}

int ipsecif_decap_outer(struct ipsecif_buf *pkt, struct ipsecif_outer_meta *meta, uint8_t *proto)
{
    struct ipsecif_outer_meta m;
    const uint8_t *p;
    size_t len, end, off, esp_off;
    uint8_t up;

    if (pkt == NULL || meta == NULL || proto == NULL || pkt->off > pkt->cap ||
        pkt->len > pkt->cap - pkt->off) {
        return IPSECIF_ERR_ARG;
    }
    p = ipsecif_buf_data(pkt);
    len = pkt->len;
    if (len < 1) {
        return IPSECIF_ERR_MALFORMED;
    }
    memset(&m, 0, sizeof(m));

    if ((p[0] >> 4) == 4) {
        size_t ihl;

        if (len < IP4_HLEN) {
            return IPSECIF_ERR_MALFORMED;
        }
        ihl = (size_t)(p[0] & 0x0f) * 4;
        end = ipsecif_load16(p + 2);
        if (ihl < IP4_HLEN || end < ihl || end > len) {
            return IPSECIF_ERR_MALFORMED;
        }
        if (ipsecif_csum_fold(ipsecif_csum_add(0, p, ihl)) != 0) {
            return IPSECIF_ERR_MALFORMED;
        }
        /* More fragments or an offset: reassembly is the host's job. */
        if ((ipsecif_load16(p + 6) & 0x3fff) != 0) {
            return IPSECIF_ERR_MALFORMED;
        }
        up = p[9];
        off = ihl;
        m.family = IPSECIF_AF_INET;
        m.src.family = IPSECIF_AF_INET;
        m.dst.family = IPSECIF_AF_INET;
        memcpy(m.src.bytes, p + 12, 4);
        memcpy(m.dst.bytes, p + 16, 4);
        m.ttl = p[8];
        m.tos = p[1];
    } else if ((p[0] >> 4) == 6) {
        struct v6chain c;

        if (len < IP6_HLEN) {
            return IPSECIF_ERR_MALFORMED;
        }
        /* A payload length of 0 means a jumbogram, which we do not take. */
        end = IP6_HLEN + (size_t)ipsecif_load16(p + 4);
        if (end == IP6_HLEN || end > len) {
            return IPSECIF_ERR_MALFORMED;
        }
        if (!v6_walk(p, end, &c) || c.frag) {
            return IPSECIF_ERR_MALFORMED;
        }
        if (c.in_transit) {
            /* Not for us yet: the host forwards it. */
            *proto = c.nh;
            return IPSECIF_ERR_PROTO;
        }
        up = c.nh;
        off = c.off;
        m.family = IPSECIF_AF_INET6;
        m.src.family = IPSECIF_AF_INET6;
        m.dst.family = IPSECIF_AF_INET6;
        memcpy(m.src.bytes, p + 8, 16);
        memcpy(m.dst.bytes, p + 24, 16);
        m.ttl = p[7];
        m.tos = (uint8_t)(((p[0] & 0x0f) << 4) | (p[1] >> 4));
    } else {
        return IPSECIF_ERR_MALFORMED;
    }

    if (up == IPSECIF_IPPROTO_ESP) {
        esp_off = off;
    } else if (up == IPSECIF_IPPROTO_UDP) {
        size_t ulen;

        if (end - off < UDP_HLEN) {
            return IPSECIF_ERR_MALFORMED;
        }
        ulen = ipsecif_load16(p + off + 4);
        if (ulen < UDP_HLEN || ulen > end - off) {
            return IPSECIF_ERR_MALFORMED;
        }
        /* The checksum is not verified: ESP authenticates what it carries,
         * and a damaged port only leads to an SA that fails the ICV. */
        m.sport = ipsecif_load16(p + off);
        m.dport = ipsecif_load16(p + off + 2);
        end = off + ulen;
        esp_off = off + UDP_HLEN;
    } else {
        *proto = up;
        return IPSECIF_ERR_PROTO;
    }

    m.ip_hlen = (uint16_t)off;
    m.esp_off = (uint16_t)esp_off;
    *meta = m;
    *proto = up;
    /* Bytes past the IP (or UDP) length are link padding, not payload. */
    ipsecif_buf_trim(pkt, len - end);
    ipsecif_buf_pull(pkt, esp_off);
    return IPSECIF_OK;
}

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

static int toobig4(struct ipsecif_buf *pkt, const struct ipsecif_addr *src, uint32_t mtu)
{
    const uint8_t *p = ipsecif_buf_data(pkt);
    size_t len = pkt->len;
    size_t ihl, quote;
    uint8_t osrc[4];
    uint8_t *h, *icmp;

    if (src->family != IPSECIF_AF_INET) {
        return IPSECIF_ERR_ARG;
    }
    if (len < IP4_HLEN) {
        return IPSECIF_ERR_MALFORMED;
    }
    ihl = (size_t)(p[0] & 0x0f) * 4;
    if (ihl < IP4_HLEN || ihl > len) {
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
    if (ipsecif_buf_headroom(pkt) < IP4_HLEN + ICMP_HLEN) {
        return IPSECIF_ERR_NOROOM;
    }
    memcpy(osrc, p + 12, 4);
    quote = len < ICMP4_MAX - IP4_HLEN - ICMP_HLEN ? len : ICMP4_MAX - IP4_HLEN - ICMP_HLEN;
    ipsecif_buf_trim(pkt, len - quote);
    h = ipsecif_buf_push(pkt, IP4_HLEN + ICMP_HLEN);

    h[0] = 0x45;
    h[1] = 0;
    ipsecif_store16(h + 2, (uint16_t)pkt->len);
    /* Atomic datagram (DF, id 0; RFC 6864): it is small enough for any path. */
    ipsecif_store16(h + 4, 0);
    ipsecif_store16(h + 6, 0x4000);
    h[8] = DEFAULT_TTL;
    h[9] = IPSECIF_IPPROTO_ICMP;
    ipsecif_store16(h + 10, 0);
    memcpy(h + 12, src->bytes, 4);
    memcpy(h + 16, osrc, 4);
    ipsecif_store16(h + 10, ipsecif_csum_fold(ipsecif_csum_add(0, h, IP4_HLEN)));

    /* Type 3 code 4 with the next-hop MTU (RFC 1191 section 4). */
    icmp = h + IP4_HLEN;
    icmp[0] = 3;
    icmp[1] = 4;
    ipsecif_store16(icmp + 2, 0);
    ipsecif_store16(icmp + 4, 0);
    ipsecif_store16(icmp + 6, (uint16_t)(mtu > 0xffffu ? 0xffffu : mtu));
    ipsecif_store16(icmp + 2, ipsecif_csum_fold(ipsecif_csum_add(0, icmp, ICMP_HLEN + quote)));
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

static int toobig6(struct ipsecif_buf *pkt, const struct ipsecif_addr *src, uint32_t mtu)
{
    const uint8_t *p = ipsecif_buf_data(pkt);
    size_t len = pkt->len;
    size_t end, quote;
    struct v6chain c;
    uint8_t osrc[16];
    uint8_t *h, *icmp;
    uint32_t sum;

    if (src->family != IPSECIF_AF_INET6) {
        return IPSECIF_ERR_ARG;
    }
    if (len < IP6_HLEN) {
        return IPSECIF_ERR_MALFORMED;
    }
    /* Unspecified or multicast sources name no single host (RFC 4443 2.4 e). */
    if (p[8] == 0xff || v6_unspec(p + 8)) {
        return IPSECIF_ERR_DISCARD;
    }
    end = IP6_HLEN + (size_t)ipsecif_load16(p + 4);
    if (end > len) {
        end = len;
    }
    if (!v6_walk(p, end, &c)) {
        return IPSECIF_ERR_MALFORMED;
    }
    if (c.frag && c.frag_off != 0) {
        return IPSECIF_ERR_DISCARD;
    }
    /* ICMPv6 errors are types 0..127 (RFC 4443 section 2.1). */
    if (c.nh == IPSECIF_IPPROTO_ICMPV6 && (c.off >= end || p[c.off] < 128)) {
        return IPSECIF_ERR_DISCARD;
    }
    if (ipsecif_buf_headroom(pkt) < IP6_HLEN + ICMP_HLEN) {
        return IPSECIF_ERR_NOROOM;
    }
    memcpy(osrc, p + 8, 16);
    quote = len < ICMP6_MAX - IP6_HLEN - ICMP_HLEN ? len : ICMP6_MAX - IP6_HLEN - ICMP_HLEN;
    ipsecif_buf_trim(pkt, len - quote);
    h = ipsecif_buf_push(pkt, IP6_HLEN + ICMP_HLEN);

    h[0] = 0x60;
    h[1] = 0;
    h[2] = 0;
    h[3] = 0;
    ipsecif_store16(h + 4, (uint16_t)(ICMP_HLEN + quote));
    h[6] = IPSECIF_IPPROTO_ICMPV6;
    h[7] = DEFAULT_TTL;
    memcpy(h + 8, src->bytes, 16);
    memcpy(h + 24, osrc, 16);

    /* Packet Too Big: type 2, code 0, MTU (RFC 4443 section 3.2). */
    icmp = h + IP6_HLEN;
    icmp[0] = 2;
    icmp[1] = 0;
    ipsecif_store16(icmp + 2, 0);
    ipsecif_store32(icmp + 4, mtu);
    sum = pseudo6(h + 8, h + 24, (uint32_t)(ICMP_HLEN + quote), IPSECIF_IPPROTO_ICMPV6);
    ipsecif_store16(icmp + 2, ipsecif_csum_fold(ipsecif_csum_add(sum, icmp, ICMP_HLEN + quote)));
    return IPSECIF_OK;
}

int ipsecif_icmp_toobig(struct ipsecif_buf *pkt, const struct ipsecif_addr *src, uint32_t mtu)
{
    const uint8_t *p;

    if (pkt == NULL || src == NULL || pkt->off > pkt->cap || pkt->len > pkt->cap - pkt->off) {
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

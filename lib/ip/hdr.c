/* Reading and writing IPv4/IPv6 headers: the inner packet's header, the
 * IPv6 extension header chain and pseudo-header. */
#include "ip/ip.h"

/* IPv6 extension headers we walk (RFC 8200). */
#define IP6_HOPOPTS IPSECIF_IPPROTO_HOPOPTS
#define IP6_ROUTING IPSECIF_IPPROTO_ROUTING
#define IP6_FRAGMENT IPSECIF_IPPROTO_FRAGMENT
#define IP6_DSTOPTS IPSECIF_IPPROTO_DSTOPTS

/* Check an IPv4 header, note what it says and trim pkt to its length. */
static int parse4(struct ipsecif_buf *pkt, const uint8_t *p, struct ipsecif_inner *in)
{
    size_t total;

    if (pkt->len < 20 || (p[0] & 0x0f) < 5) {
        return IPSECIF_ERR_MALFORMED;
    }
    total = ipsecif_load16(p + 2);
    if (total < (size_t)(p[0] & 0x0f) * 4 || total > pkt->len) {
        return IPSECIF_ERR_MALFORMED;
    }
    in->family = IPSECIF_AF_INET;
    in->nh = IPSECIF_IPPROTO_IPV4;
    in->tos = p[1];
    in->df = (p[6] & 0x40) != 0;
    pkt->len = total;
    return IPSECIF_OK;
}

/* The same for IPv6. */
static int parse6(struct ipsecif_buf *pkt, const uint8_t *p, struct ipsecif_inner *in)
{
    size_t total;

    if (pkt->len < 40) {
        return IPSECIF_ERR_MALFORMED;
    }
    total = 40 + (size_t)ipsecif_load16(p + 4);
    if (total > pkt->len) {
        return IPSECIF_ERR_MALFORMED;
    }
    in->family = IPSECIF_AF_INET6;
    in->nh = IPSECIF_IPPROTO_IPV6;
    in->tos = (uint8_t)(((p[0] & 0x0f) << 4) | (p[1] >> 4));
    in->df = true;
    pkt->len = total;
    return IPSECIF_OK;
}

int ipsecif_inner_parse(struct ipsecif_buf *pkt, struct ipsecif_inner *in)
{
    const uint8_t *p = ipsecif_buf_data(pkt);

    if (pkt->len < 1) {
        return IPSECIF_ERR_MALFORMED;
    }
    switch (p[0] >> 4) {
    case 4:
        return parse4(pkt, p, in);
    case 6:
        return parse6(pkt, p, in);
    default:
        return IPSECIF_ERR_MALFORMED;
    }
}

void ipsecif_inner_set_ecn(struct ipsecif_buf *pkt, uint8_t family, uint8_t ecn)
{
    uint8_t *p = ipsecif_buf_data(pkt);

    if (family == IPSECIF_AF_INET) {
        size_t hlen = (size_t)(p[0] & 0x0f) * 4;

        p[1] = (uint8_t)((p[1] & 0xfc) | (ecn & 3));
        ipsecif_ip4_set_csum(p, hlen);
    } else {
        p[1] = (uint8_t)((p[1] & 0xcf) | ((ecn & 3) << 4));
    }
}

void ipsecif_ip4_set_csum(uint8_t *h, size_t hlen)
{
    h[10] = 0;
    h[11] = 0;
    ipsecif_store16(h + 10, ipsecif_csum_fold(ipsecif_csum_add(0, h, hlen)));
}

void ipsecif_ip_set_len(uint8_t *p, uint8_t family, size_t hlen, size_t len)
{
    if (family == IPSECIF_AF_INET) {
        ipsecif_store16(p + 2, (uint16_t)len);
        ipsecif_ip4_set_csum(p, hlen);
    } else {
        ipsecif_store16(p + 4, (uint16_t)(len - IPSECIF_IP6_HLEN));
    }
}

uint32_t ipsecif_v6_pseudo(const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t nh)
{
    uint32_t sum = 0;

    sum = ipsecif_csum_add(sum, src, 16);
    sum = ipsecif_csum_add(sum, dst, 16);
    sum += len >> 16;
    sum += len & 0xffffu;
    sum += nh;
    return sum;
}

/* The length of the hop-by-hop, routing or destination options header nh at
 * p + off, or 0 if it is misplaced or runs past end. */
static size_t ext_len(const uint8_t *p, size_t off, size_t end, uint8_t nh)
{
    size_t hl;

    /* Hop-by-hop options may only follow the IPv6 header (RFC 8200 4.3). */
    if (nh == IP6_HOPOPTS && off != IPSECIF_IP6_HLEN) {
        return 0;
    }
    if (end - off < 8) {
        return 0;
    }
    hl = ((size_t)p[off + 1] + 1) * 8;
    if (end - off < hl) {
        return 0;
    }
    return hl;
}

bool ipsecif_v6_walk(const uint8_t *p, size_t end, struct ipsecif_v6chain *c)
{
    uint8_t nh = p[6];
    size_t off = IPSECIF_IP6_HLEN;

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
        hl = ext_len(p, off, end, nh);
        if (hl == 0) {
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

/* ---- Where an IPsec header sits ---- */

/* An IPv4 header of a whole datagram: IPsec applies to whole datagrams
 * (RFC 4302 section 3.4.1, RFC 4303 section 3.4.1). */
static int layout4(const uint8_t *p, size_t len, struct ipsecif_sec_layout *l)
{
    size_t hlen;

    if (len < IPSECIF_IP4_HLEN || (p[0] >> 4) != 4) {
        return IPSECIF_ERR_MALFORMED;
    }
    hlen = (size_t)(p[0] & 0x0f) * 4;
    if (hlen < IPSECIF_IP4_HLEN || hlen > len || ipsecif_load16(p + 2) != len) {
        return IPSECIF_ERR_MALFORMED;
    }
    if ((ipsecif_load16(p + 6) & 0x3fff) != 0) {
        return IPSECIF_ERR_MALFORMED;
    }
    l->family = IPSECIF_AF_INET;
    l->pre = hlen;
    l->nh_pos = 9;
    return IPSECIF_OK;
}

/* Is nh one of the IPv6 headers that go in front of an IPsec header? */
static bool v6_front(uint8_t nh, size_t pos)
{
    return nh == IP6_ROUTING || (nh == IP6_HOPOPTS && pos == IPSECIF_IP6_HLEN) || nh == IP6_DSTOPTS;
}

static int layout6(const uint8_t *p, size_t len, uint8_t want, struct ipsecif_sec_layout *l)
{
    size_t pos = IPSECIF_IP6_HLEN, nh_pos = 6, hl;
    bool seen_rh = false;
    uint8_t nh;

    if (len < IPSECIF_IP6_HLEN || (p[0] >> 4) != 6 ||
        (size_t)ipsecif_load16(p + 4) + IPSECIF_IP6_HLEN != len) {
        return IPSECIF_ERR_MALFORMED;
    }
    nh = p[6];
    for (;;) {
        if (want != 0 && nh == want) {
            break;
        }
        if (nh == IP6_FRAGMENT) {
            return IPSECIF_ERR_MALFORMED;
        }
        if (!v6_front(nh, pos)) {
            if (want != 0) {
                return IPSECIF_ERR_PROTO;
            }
            break;
        }
        if (len - pos < 2 || ((size_t)p[pos + 1] + 1) * 8 > len - pos) {
            return IPSECIF_ERR_MALFORMED;
        }
        hl = ((size_t)p[pos + 1] + 1) * 8;
        /* Destination options after a routing header are for the final
         * destination and follow the IPsec header; those before go in
         * front, as Linux and scapy place them. */
        if (want == 0 && nh == IP6_DSTOPTS && seen_rh) {
            break;
        }
        seen_rh = seen_rh || nh == IP6_ROUTING;
        nh = p[pos];
        nh_pos = pos;
        pos += hl;
    }
    l->family = IPSECIF_AF_INET6;
    l->pre = pos;
    l->nh_pos = nh_pos;
    return IPSECIF_OK;
}

int ipsecif_sec_layout(const uint8_t *p, size_t len, uint8_t want, struct ipsecif_sec_layout *l)
{
    if (len == 0) {
        return IPSECIF_ERR_MALFORMED;
    }
    if ((p[0] >> 4) == 4) {
        int rc = layout4(p, len, l);

        if (rc == IPSECIF_OK && want != 0 && p[9] != want) {
            return IPSECIF_ERR_PROTO;
        }
        return rc;
    }
    return layout6(p, len, want, l);
}

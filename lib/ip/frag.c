/*
 * Fragmentation of a whole packet that the path cannot carry: IPv4 as a
 * router or host does it (RFC 791 section 3.2), IPv6 as the source does
 * it (RFC 8200 section 4.5). Each fragment is written into the caller's
 * buffer: the header has to be repeated, so in place is not possible.
 */
#include "ip/ip.h"

#define FRAG6_HLEN 8
#define IPV6_MIN_MTU 1280u

/* The header of the IPv4 fragments after the first: the fixed part and
 * only the options with the copy flag (RFC 791 section 3.1). */
static int h2_build(struct ipsecif_frag *f, const uint8_t *p, size_t ihl)
{
    size_t i = IPSECIF_IP4_HLEN;
    size_t n = IPSECIF_IP4_HLEN;

    memcpy(f->h2, p, IPSECIF_IP4_HLEN);
    while (i < ihl) {
        uint8_t t = p[i];
        size_t ol;

        if (t == 0) {
            break; /* end of options */
        }
        if (t == 1) {
            i++;
            continue;
        }
        if (i + 1 >= ihl) {
            return IPSECIF_ERR_MALFORMED;
        }
        ol = p[i + 1];
        if (ol < 2 || i + ol > ihl) {
            return IPSECIF_ERR_MALFORMED;
        }
        if ((t & 0x80) != 0) {
            memcpy(f->h2 + n, p + i, ol);
            n += ol;
        }
        i += ol;
    }
    while (n % 4 != 0) {
        f->h2[n++] = 0;
    }
    f->h2[0] = (uint8_t)(0x40 | (n / 4));
    f->h2len = (uint8_t)n;
    return IPSECIF_OK;
}

static int start4(struct ipsecif_frag *f, const uint8_t *p, size_t len, uint32_t mtu, uint32_t id)
{
    size_t ihl;
    uint16_t fo;
    int rc;

    if (len < IPSECIF_IP4_HLEN) {
        return IPSECIF_ERR_MALFORMED;
    }
    ihl = (size_t)(p[0] & 0x0f) * 4;
    if (ihl < IPSECIF_IP4_HLEN || ihl > len || ipsecif_load16(p + 2) != len) {
        return IPSECIF_ERR_MALFORMED;
    }
    fo = ipsecif_load16(p + 6);
    f->family = IPSECIF_AF_INET;
    f->hlen = ihl;
    f->off0 = (uint16_t)(fo & 0x1fff);
    f->mf0 = (fo & 0x2000) != 0;
    f->id = ipsecif_load16(p + 4);
    if (len <= mtu) {
        f->whole = true;
        return IPSECIF_OK;
    }
    if ((fo & 0x4000) != 0) {
        return IPSECIF_ERR_TOOBIG;
    }
    if (f->id == 0) {
        f->id = id & 0xffffu;
        if (f->id == 0) {
            return IPSECIF_ERR_ARG;
        }
    }
    rc = h2_build(f, p, ihl);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (mtu < ihl + 8) {
        return IPSECIF_ERR_RANGE;
    }
    f->chunk1 = (mtu - ihl) & ~(size_t)7;
    f->chunk = (mtu - f->h2len) & ~(size_t)7;
    /* The offset field holds 13 bits of 8-byte units. */
    if ((size_t)f->off0 * 8 + (len - ihl) > 0xffff) {
        return IPSECIF_ERR_MALFORMED;
    }
    return IPSECIF_OK;
}

static int start6(struct ipsecif_frag *f, const uint8_t *p, size_t len, uint32_t mtu, uint32_t id)
{
    size_t pos = IPSECIF_IP6_HLEN;
    size_t unfrag = IPSECIF_IP6_HLEN;
    size_t unfrag_nh = 6;
    size_t upper;
    uint8_t nh;

    if (len < IPSECIF_IP6_HLEN || IPSECIF_IP6_HLEN + (size_t)ipsecif_load16(p + 4) != len) {
        return IPSECIF_ERR_MALFORMED;
    }
    nh = p[6];
    /* Hop-by-hop options and routing headers (with the destination
     * options before a routing header) are for the nodes on the way:
     * the unfragmentable part ends after the last of them. */
    while (nh == 0 || nh == 43 || nh == 60 || nh == IPSECIF_IPPROTO_AH) {
        size_t hl;

        if (pos + 2 > len) {
            return IPSECIF_ERR_MALFORMED;
        }
        hl = nh == IPSECIF_IPPROTO_AH ? ((size_t)p[pos + 1] + 2) * 4 : ((size_t)p[pos + 1] + 1) * 8;
        if (pos + hl > len) {
            return IPSECIF_ERR_MALFORMED;
        }
        if (nh == 0 || nh == 43) {
            unfrag = pos + hl;
            unfrag_nh = pos;
        }
        nh = p[pos];
        pos += hl;
    }
    if (nh == 44) {
        return IPSECIF_ERR_MALFORMED;
    }
    f->family = IPSECIF_AF_INET6;
    f->hlen = unfrag;
    f->nh_pos = unfrag_nh;
    f->nh = p[unfrag_nh];
    f->id = id;
    if (len <= mtu) {
        f->whole = true;
        return IPSECIF_OK;
    }
    if (mtu < IPV6_MIN_MTU || mtu < unfrag + FRAG6_HLEN + 8) {
        return IPSECIF_ERR_RANGE;
    }
    f->chunk1 = (mtu - unfrag - FRAG6_HLEN) & ~(size_t)7;
    f->chunk = f->chunk1;
    /* RFC 8200 section 4.5: the first fragment holds every header up to
     * the upper-layer one, and that one too (20 bytes: TCP's, the longest
     * a receiver asks for). */
    upper = len - pos < 20 ? len - pos : 20;
    if (pos - unfrag + upper > f->chunk1) {
        return IPSECIF_ERR_RANGE;
    }
    return IPSECIF_OK;
}

int ipsecif_frag_start(struct ipsecif_frag *f, const struct ipsecif_buf *pkt, uint32_t mtu,
                       uint32_t id)
{
    const uint8_t *p;
    int rc;

    if (f == NULL || !ipsecif_buf_valid(pkt)) {
        return IPSECIF_ERR_ARG;
    }
    memset(f, 0, sizeof(*f));
    if (pkt->len < 1) {
        return IPSECIF_ERR_MALFORMED;
    }
    if (mtu > 0xffff) {
        mtu = 0xffff;
    }
    p = ipsecif_buf_data(pkt);
    if ((p[0] >> 4) == 4) {
        rc = start4(f, p, pkt->len, mtu, id);
    } else if ((p[0] >> 4) == 6) {
        rc = start6(f, p, pkt->len, mtu, id);
    } else {
        rc = IPSECIF_ERR_MALFORMED;
    }
    if (rc != IPSECIF_OK) {
        memset(f, 0, sizeof(*f));
        return rc;
    }
    f->pkt = p;
    f->len = pkt->len;
    return IPSECIF_OK;
}

static void next4(struct ipsecif_frag *f, uint8_t *o, size_t chunk, bool first, bool more)
{
    size_t hl = first ? f->hlen : f->h2len;
    uint16_t fo = (uint16_t)(f->off0 + f->pos / 8);

    memcpy(o, first ? f->pkt : f->h2, hl);
    memcpy(o + hl, f->pkt + f->hlen + f->pos, chunk);
    ipsecif_store16(o + 2, (uint16_t)(hl + chunk));
    ipsecif_store16(o + 4, (uint16_t)f->id);
    ipsecif_store16(o + 6, (uint16_t)(fo | (more ? 0x2000 : 0)));
    ipsecif_store16(o + 10, 0);
    ipsecif_store16(o + 10, ipsecif_csum_fold(ipsecif_csum_add(0, o, hl)));
}

static void next6(struct ipsecif_frag *f, uint8_t *o, size_t chunk, bool more)
{
    uint8_t *fh = o + f->hlen;

    memcpy(o, f->pkt, f->hlen);
    o[f->nh_pos] = 44;
    ipsecif_store16(o + 4, (uint16_t)(f->hlen - IPSECIF_IP6_HLEN + FRAG6_HLEN + chunk));
    fh[0] = f->nh;
    fh[1] = 0;
    ipsecif_store16(fh + 2, (uint16_t)((f->pos / 8) << 3 | (more ? 1u : 0u)));
    ipsecif_store32(fh + 4, f->id);
    memcpy(fh + FRAG6_HLEN, f->pkt + f->hlen + f->pos, chunk);
}

int ipsecif_frag_next(struct ipsecif_frag *f, struct ipsecif_buf *out)
{
    size_t payload;
    size_t chunk;
    size_t need;
    bool first;
    bool more;

    if (f == NULL || !ipsecif_buf_valid(out)) {
        return IPSECIF_ERR_ARG;
    }
    if (f->pkt == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    if (f->whole) {
        /* It fits: the packet as it is. */
        if (out->cap - out->off < f->len) {
            return IPSECIF_ERR_NOROOM;
        }
        memcpy(out->base + out->off, f->pkt, f->len);
        out->len = f->len;
        f->pkt = NULL;
        return IPSECIF_OK;
    }
    payload = f->len - f->hlen;
    first = f->pos == 0;
    if (f->pos >= payload) {
        f->pkt = NULL;
        return IPSECIF_ERR_NOENT;
    }
    chunk = first ? f->chunk1 : f->chunk;
    if (chunk > payload - f->pos) {
        chunk = payload - f->pos;
    }
    more = f->pos + chunk < payload;
    if (f->family == IPSECIF_AF_INET) {
        more = more || f->mf0;
        need = (first ? f->hlen : f->h2len) + chunk;
    } else {
        need = f->hlen + FRAG6_HLEN + chunk;
    }
    if (out->cap - out->off < need) {
        return IPSECIF_ERR_NOROOM;
    }
    if (f->family == IPSECIF_AF_INET) {
        next4(f, out->base + out->off, chunk, first, more);
    } else {
        next6(f, out->base + out->off, chunk, more);
    }
    out->len = need;
    f->pos += chunk;
    return IPSECIF_OK;
}

int ipsecif_frag_toobig(struct ipsecif_buf *pkt, const struct ipsecif_addr *src, uint32_t mtu)
{
    return ipsecif_icmp_toobig(pkt, src, mtu);
}

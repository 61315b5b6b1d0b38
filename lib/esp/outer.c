/*
 * The outer header of a tunnel packet: the IPv4/IPv6 header pushed in front
 * of ESP, with optional UDP encapsulation (RFC 3948), and the parsing of
 * received outer headers.
 */
#include "core/ctx.h"

/* The outer IP header's length for this address pair, 0 if there is none. */
static size_t outer_iphl(const struct ipsecif_addr *src, const struct ipsecif_addr *dst)
{
    if (src->family != dst->family) {
        return 0;
    }
    if (src->family == IPSECIF_AF_INET) {
        return IPSECIF_IP4_HLEN;
    }
    if (src->family == IPSECIF_AF_INET6) {
        return IPSECIF_IP6_HLEN;
    }
    return 0;
}

static bool meta_udp(const struct ipsecif_outer_meta *m)
{
    return m->sport != 0 || m->dport != 0;
}

static void put_udp(uint8_t *u, const struct ipsecif_outer_meta *m, size_t esp_len)
{
    ipsecif_store16(u, m->sport);
    ipsecif_store16(u + 2, m->dport);
    ipsecif_store16(u + 4, (uint16_t)(IPSECIF_UDP_HLEN + esp_len));
    /* IPv4: no checksum, ESP protects the content (RFC 3948 section 2.1). */
    ipsecif_store16(u + 6, 0);
}

/* The checksum is summed from the fields, not read back from the header
 * just written: loads over fresh narrow stores stall store forwarding. */
static void put_ip4(uint8_t *h, const struct ipsecif_outer_meta *m, uint8_t proto, size_t len,
                    uint16_t id, bool df)
{
    uint16_t tot = (uint16_t)(m->esp_off + len);
    uint16_t frag = df ? 0x4000 : 0;
    uint32_t sum;

    sum = (0x45u << 8 | m->tos) + (uint32_t)tot + id + frag + ((uint32_t)m->ttl << 8 | proto);
    sum = ipsecif_csum_add(sum, m->src.bytes, 4);
    sum = ipsecif_csum_add(sum, m->dst.bytes, 4);
    h[0] = 0x45;
    h[1] = m->tos;
    ipsecif_store16(h + 2, tot);
    ipsecif_store16(h + 4, id);
    ipsecif_store16(h + 6, frag);
    h[8] = m->ttl;
    h[9] = proto;
    ipsecif_store16(h + 10, ipsecif_csum_fold(sum));
    memcpy(h + 12, m->src.bytes, 4);
    memcpy(h + 16, m->dst.bytes, 4);
}

/* Written after the UDP header and the ESP packet it covers. */
static void put_ip6(uint8_t *h, const struct ipsecif_outer_meta *m, uint8_t proto, size_t len)
{
    h[0] = (uint8_t)(0x60 | (m->tos >> 4));
    h[1] = (uint8_t)(m->tos << 4);
    h[2] = 0;
    h[3] = 0;
    ipsecif_store16(h + 4, (uint16_t)(m->esp_off - IPSECIF_IP6_HLEN + len));
    h[6] = proto;
    h[7] = m->ttl;
    memcpy(h + 8, m->src.bytes, 16);
    memcpy(h + 24, m->dst.bytes, 16);
    if (meta_udp(m)) {
        /* IPv6 requires a UDP checksum (RFC 8200 section 8.1). */
        uint32_t ulen = (uint32_t)(IPSECIF_UDP_HLEN + len);
        uint32_t sum = ipsecif_v6_pseudo(m->src.bytes, m->dst.bytes, ulen, IPSECIF_IPPROTO_UDP);
        uint16_t c = ipsecif_csum_fold(ipsecif_csum_add(sum, h + IPSECIF_IP6_HLEN, ulen));

        ipsecif_store16(h + IPSECIF_IP6_HLEN + 6, c == 0 ? 0xffff : c);
    }
}

void ipsecif_outer_write(uint8_t *h, const struct ipsecif_outer_meta *m, uint8_t proto, size_t len,
                         uint16_t id, bool df)
{
    if (meta_udp(m)) {
        put_udp(h + m->ip_hlen, m, len);
        proto = IPSECIF_IPPROTO_UDP;
    }
    if (m->family == IPSECIF_AF_INET) {
        put_ip4(h, m, proto, len, id, df);
    } else {
        put_ip6(h, m, proto, len);
    }
}

/* The outer headers' length (IP, and UDP when udp), 0 if the pair has no
 * outer header or the packet would not fit the 16-bit length fields. */
static size_t outer_need(const struct ipsecif_addr *src, const struct ipsecif_addr *dst, bool udp,
                         size_t esp_len, size_t *iphl)
{
    size_t need;

    *iphl = outer_iphl(src, dst);
    if (*iphl == 0) {
        return 0;
    }
    need = *iphl + (udp ? IPSECIF_UDP_HLEN : 0);
    /* IPv4 counts the whole packet, IPv6 the payload. */
    if (esp_len > 0xffffu - (need - (src->family == IPSECIF_AF_INET6 ? IPSECIF_IP6_HLEN : 0))) {
        return 0;
    }
    return need;
}

/* meta is filled first and the headers are written from it. */
int ipsecif_encap_outer(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                        const struct ipsecif_addr *src, const struct ipsecif_addr *dst,
                        uint16_t sport, uint16_t dport, uint8_t tos, bool df,
                        struct ipsecif_outer_meta *meta)
{
    size_t iphl, need, esp_len;
    uint8_t *h;

    if (ctx == NULL || pkt == NULL || src == NULL || dst == NULL || meta == NULL) {
        return IPSECIF_ERR_ARG;
    }
    esp_len = pkt->len;
    need = outer_need(src, dst, sport != 0 || dport != 0, esp_len, &iphl);
    if (need == 0) {
        return IPSECIF_ERR_ARG;
    }
    if (!ipsecif_buf_room(pkt, need, 0)) {
        return IPSECIF_ERR_NOROOM;
    }
    memset(meta, 0, sizeof(*meta));
    meta->family = src->family;
    meta->src = *src;
    meta->dst = *dst;
    meta->ttl = ctx->cfg.ttl != 0 ? ctx->cfg.ttl : IPSECIF_DEFAULT_TTL;
    meta->tos = tos;
    meta->ip_hlen = (uint16_t)iphl;
    meta->sport = sport;
    meta->dport = dport;
    meta->esp_off = (uint16_t)need;
    h = ipsecif_buf_push(pkt, need);
    /* IPv6 has no id: it takes none of the sequence. */
    ipsecif_outer_write(h, meta, IPSECIF_IPPROTO_ESP, esp_len,
                        meta->family == IPSECIF_AF_INET ? ctx->ip_id++ : 0, df);
    return IPSECIF_OK;
}

void ipsecif_outer_tpl_set(struct ipsecif_outer_tpl *t, const struct ipsecif_addr *src,
                           const struct ipsecif_addr *dst, uint16_t sport, uint16_t dport,
                           uint8_t ttl)
{
    struct ipsecif_outer_meta *m = &t->meta;
    bool udp = sport != 0 || dport != 0;
    size_t iphl, need;

    memset(t, 0, sizeof(*t));
    need = outer_need(src, dst, udp, 0, &iphl);
    if (need == 0) {
        return;
    }
    m->family = src->family;
    m->src = *src;
    m->dst = *dst;
    m->ttl = ttl;
    m->ip_hlen = (uint16_t)iphl;
    m->sport = sport;
    m->dport = dport;
    m->esp_off = (uint16_t)need;
    t->max_len =
        (uint16_t)(0xffffu - (need - (src->family == IPSECIF_AF_INET6 ? IPSECIF_IP6_HLEN : 0)));
    /* The headers of an empty packet, then what differs per packet zeroed:
     * lengths and checksums (IPv4's id is 0 already). */
    ipsecif_outer_write(t->hdr, m, IPSECIF_IPPROTO_ESP, 0, 0, false);
    if (udp) {
        memset(t->hdr + iphl + 4, 0, 4);
    }
    if (src->family == IPSECIF_AF_INET) {
        memset(t->hdr + 2, 0, 2);
        memset(t->hdr + 10, 0, 2);
        t->sum = ipsecif_csum_add(0, t->hdr, IPSECIF_IP4_HLEN);
        return;
    }
    memset(t->hdr + 4, 0, 2);
    if (udp) {
        /* Pseudo-header addresses and protocol, and the ports. */
        t->sum = ipsecif_v6_pseudo(src->bytes, dst->bytes, 0, IPSECIF_IPPROTO_UDP);
        t->sum = ipsecif_csum_add(t->sum, t->hdr + IPSECIF_IP6_HLEN, IPSECIF_UDP_HLEN);
    }
}

/* Per packet, only what differs between packets is written over the
 * template's bytes, and the checksums add those fields to the template's. */
int ipsecif_encap_tpl(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                      const struct ipsecif_outer_tpl *t, uint8_t tos, bool df,
                      struct ipsecif_outer_meta *meta)
{
    size_t need = t->meta.esp_off;
    size_t len = pkt->len;
    uint8_t *h;

    if (need == 0 || len > t->max_len) {
        return IPSECIF_ERR_ARG;
    }
    if (!ipsecif_buf_room(pkt, need, 0)) {
        return IPSECIF_ERR_NOROOM;
    }
    *meta = t->meta;
    meta->tos = tos;
    h = ipsecif_buf_push(pkt, need);
    if (t->meta.family == IPSECIF_AF_INET) {
        uint16_t tot = (uint16_t)(need + len);
        uint16_t id = ctx->ip_id++;
        uint16_t frag = df ? 0x4000 : 0;

        memcpy(h, t->hdr, IPSECIF_IP4_HLEN);
        h[1] = tos;
        ipsecif_store16(h + 2, tot);
        ipsecif_store16(h + 4, id);
        ipsecif_store16(h + 6, frag);
        ipsecif_store16(h + 10, ipsecif_csum_fold(t->sum + tos + tot + id + frag));
        if (need > IPSECIF_IP4_HLEN) {
            memcpy(h + IPSECIF_IP4_HLEN, t->hdr + IPSECIF_IP4_HLEN, IPSECIF_UDP_HLEN);
            ipsecif_store16(h + IPSECIF_IP4_HLEN + 4, (uint16_t)(IPSECIF_UDP_HLEN + len));
        }
        return IPSECIF_OK;
    }
    memcpy(h, t->hdr, IPSECIF_IP6_HLEN);
    h[0] = (uint8_t)(0x60 | (tos >> 4));
    h[1] = (uint8_t)(tos << 4);
    ipsecif_store16(h + 4, (uint16_t)(need - IPSECIF_IP6_HLEN + len));
    if (need > IPSECIF_IP6_HLEN) {
        /* IPv6 requires a UDP checksum (RFC 8200 section 8.1): the
         * length counts in the pseudo-header and in the UDP header. */
        uint32_t ulen = (uint32_t)(IPSECIF_UDP_HLEN + len);
        uint8_t *u = h + IPSECIF_IP6_HLEN;
        uint16_t c;

        memcpy(u, t->hdr + IPSECIF_IP6_HLEN, IPSECIF_UDP_HLEN);
        ipsecif_store16(u + 4, (uint16_t)ulen);
        c = ipsecif_csum_fold(ipsecif_csum_add(t->sum + 2 * ulen, u + IPSECIF_UDP_HLEN, len));
        ipsecif_store16(u + 6, c == 0 ? 0xffff : c);
    }
    return IPSECIF_OK;
}

void ipsecif_outer_set_proto(struct ipsecif_buf *pkt, const struct ipsecif_outer_meta *meta,
                             uint8_t proto)
{
    uint8_t *h = ipsecif_buf_data(pkt);

    if (meta->family == IPSECIF_AF_INET) {
        h[9] = proto;
        ipsecif_ip4_set_csum(h, meta->ip_hlen);
    } else {
        h[6] = proto;
    }
}

/* What the parse of a received outer header has found so far. */
struct outer_parse {
    /* The caller's meta, written in place: a local copy assigned at the end
     * was read back in wide loads from narrow stores, a store-forwarding
     * stall on every packet. */
    struct ipsecif_outer_meta *m;
    size_t end;     /* end of the IP payload, then of the UDP datagram */
    size_t off;     /* the upper-layer header */
    size_t esp_off; /* the ESP header */
    uint8_t up;     /* the upper-layer protocol */
};

/* The source and destination address, adjacent in both IP headers at a. */
static void take_addrs(struct ipsecif_outer_meta *m, uint8_t family, const uint8_t *a, size_t alen)
{
    m->family = family;
    m->src.family = family;
    m->dst.family = family;
    memcpy(m->src.bytes, a, alen);
    memcpy(m->dst.bytes, a + alen, alen);
}

static int parse_ip4(const uint8_t *p, size_t len, struct outer_parse *o)
{
    size_t ihl;

    if (len < IPSECIF_IP4_HLEN) {
        return IPSECIF_ERR_MALFORMED;
    }
    ihl = (size_t)(p[0] & 0x0f) * 4;
    o->end = ipsecif_load16(p + 2);
    if (ihl < IPSECIF_IP4_HLEN || o->end < ihl || o->end > len) {
        return IPSECIF_ERR_MALFORMED;
    }
    /* A header without options, nearly every one, with a length the
     * compiler knows. */
    if (ipsecif_csum_fold(ihl == IPSECIF_IP4_HLEN ? ipsecif_csum_add(0, p, IPSECIF_IP4_HLEN)
                                                  : ipsecif_csum_add(0, p, ihl)) != 0) {
        return IPSECIF_ERR_MALFORMED;
    }
    /* More fragments or an offset: reassembly is the host's job. */
    if ((ipsecif_load16(p + 6) & 0x3fff) != 0) {
        return IPSECIF_ERR_MALFORMED;
    }
    o->up = p[9];
    o->off = ihl;
    take_addrs(o->m, IPSECIF_AF_INET, p + 12, 4);
    o->m->ttl = p[8];
    o->m->tos = p[1];
    return IPSECIF_OK;
}

/* IPSECIF_ERR_PROTO with o->up set: not for us (yet). */
static int parse_ip6(const uint8_t *p, size_t len, struct outer_parse *o)
{
    struct ipsecif_v6chain c;

    if (len < IPSECIF_IP6_HLEN) {
        return IPSECIF_ERR_MALFORMED;
    }
    /* A payload length of 0 means a jumbogram, which we do not take. */
    o->end = IPSECIF_IP6_HLEN + (size_t)ipsecif_load16(p + 4);
    if (o->end == IPSECIF_IP6_HLEN || o->end > len) {
        return IPSECIF_ERR_MALFORMED;
    }
    if (!ipsecif_v6_walk(p, o->end, &c) || c.frag) {
        return IPSECIF_ERR_MALFORMED;
    }
    o->up = c.nh;
    if (c.in_transit) {
        /* Not for us yet: the host forwards it. */
        return IPSECIF_ERR_PROTO;
    }
    o->off = c.off;
    take_addrs(o->m, IPSECIF_AF_INET6, p + 8, 16);
    o->m->ttl = p[7];
    o->m->tos = (uint8_t)(((p[0] & 0x0f) << 4) | (p[1] >> 4));
    return IPSECIF_OK;
}

/* ESP, or ESP in UDP; IPSECIF_ERR_PROTO for anything else. */
static int parse_upper(const uint8_t *p, struct outer_parse *o)
{
    size_t ulen;

    if (o->up == IPSECIF_IPPROTO_ESP) {
        o->esp_off = o->off;
        return IPSECIF_OK;
    }
    if (o->up != IPSECIF_IPPROTO_UDP) {
        return IPSECIF_ERR_PROTO;
    }
    if (o->end - o->off < IPSECIF_UDP_HLEN) {
        return IPSECIF_ERR_MALFORMED;
    }
    ulen = ipsecif_load16(p + o->off + 4);
    if (ulen < IPSECIF_UDP_HLEN || ulen > o->end - o->off) {
        return IPSECIF_ERR_MALFORMED;
    }
    /* The checksum is not verified: ESP authenticates what it carries,
     * and a damaged port only leads to an SA that fails the ICV. */
    o->m->sport = ipsecif_load16(p + o->off);
    o->m->dport = ipsecif_load16(p + o->off + 2);
    o->end = o->off + ulen;
    o->esp_off = o->off + IPSECIF_UDP_HLEN;
    return IPSECIF_OK;
}

int ipsecif_decap_outer(struct ipsecif_buf *pkt, struct ipsecif_outer_meta *meta, uint8_t *proto)
{
    struct outer_parse o;
    const uint8_t *p;
    size_t len;
    int rc;

    p = ipsecif_buf_data(pkt);
    len = pkt->len;
    if (len < 1) {
        return IPSECIF_ERR_MALFORMED;
    }
    o.m = meta;
    memset(meta, 0, sizeof(*meta));
    if ((p[0] >> 4) == 4) {
        rc = parse_ip4(p, len, &o);
    } else if ((p[0] >> 4) == 6) {
        rc = parse_ip6(p, len, &o);
    } else {
        rc = IPSECIF_ERR_MALFORMED;
    }
    if (rc == IPSECIF_OK) {
        rc = parse_upper(p, &o);
    }
    if (rc == IPSECIF_ERR_PROTO) {
        *proto = o.up;
    }
    if (rc != IPSECIF_OK) {
        return rc;
    }
    meta->ip_hlen = (uint16_t)o.off;
    meta->esp_off = (uint16_t)o.esp_off;
    *proto = o.up;
    /* Bytes past the IP (or UDP) length are link padding, not payload. */
    ipsecif_buf_trim(pkt, len - o.end);
    ipsecif_buf_pull(pkt, o.esp_off);
    return IPSECIF_OK;
}

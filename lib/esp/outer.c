/*
 * The outer header of a tunnel packet: the IPv4/IPv6 header pushed in front
 * of ESP, with optional UDP encapsulation (RFC 3948), and the parsing of
 * received outer headers.
 */
#include "core/ctx.h"

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
        iphl = IPSECIF_IP4_HLEN;
    } else if (src->family == IPSECIF_AF_INET6) {
        iphl = IPSECIF_IP6_HLEN;
    } else {
        return IPSECIF_ERR_ARG;
    }
    esp_len = pkt->len;
    need = iphl + (udp ? IPSECIF_UDP_HLEN : 0);
    /* The length fields are 16 bits (IPv4: the whole packet, IPv6: the payload). */
    if (esp_len > 0xffffu - (need - (src->family == IPSECIF_AF_INET6 ? IPSECIF_IP6_HLEN : 0))) {
        return IPSECIF_ERR_ARG;
    }
    if (!ipsecif_buf_room(pkt, need, 0)) {
        return IPSECIF_ERR_NOROOM;
    }
    ttl = ctx->cfg.ttl != 0 ? ctx->cfg.ttl : IPSECIF_DEFAULT_TTL;
    h = ipsecif_buf_push(pkt, need);

    if (udp) {
        uint8_t *u = h + iphl;

        ipsecif_store16(u, sport);
        ipsecif_store16(u + 2, dport);
        ipsecif_store16(u + 4, (uint16_t)(IPSECIF_UDP_HLEN + esp_len));
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
        ipsecif_store16(h + 10, ipsecif_csum_fold(ipsecif_csum_add(0, h, IPSECIF_IP4_HLEN)));
    } else {
        h[0] = (uint8_t)(0x60 | (tos >> 4));
        h[1] = (uint8_t)(tos << 4);
        h[2] = 0;
        h[3] = 0;
        ipsecif_store16(h + 4, (uint16_t)(need - IPSECIF_IP6_HLEN + esp_len));
        h[6] = proto;
        h[7] = ttl;
        memcpy(h + 8, src->bytes, 16);
        memcpy(h + 24, dst->bytes, 16);
        if (udp) {
            /* IPv6 requires a UDP checksum (RFC 8200 section 8.1). */
            uint32_t ulen = (uint32_t)(IPSECIF_UDP_HLEN + esp_len);
            uint32_t sum = ipsecif_v6_pseudo(src->bytes, dst->bytes, ulen, IPSECIF_IPPROTO_UDP);
            uint16_t c = ipsecif_csum_fold(ipsecif_csum_add(sum, h + IPSECIF_IP6_HLEN, ulen));

            ipsecif_store16(h + IPSECIF_IP6_HLEN + 6, c == 0 ? 0xffff : c);
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

int ipsecif_decap_outer(struct ipsecif_buf *pkt, struct ipsecif_outer_meta *meta, uint8_t *proto)
{
    struct ipsecif_outer_meta m;
    const uint8_t *p;
    size_t len, end, off, esp_off;
    uint8_t up;

    if (!ipsecif_buf_valid(pkt) || meta == NULL || proto == NULL) {
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

        if (len < IPSECIF_IP4_HLEN) {
            return IPSECIF_ERR_MALFORMED;
        }
        ihl = (size_t)(p[0] & 0x0f) * 4;
        end = ipsecif_load16(p + 2);
        if (ihl < IPSECIF_IP4_HLEN || end < ihl || end > len) {
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
        struct ipsecif_v6chain c;

        if (len < IPSECIF_IP6_HLEN) {
            return IPSECIF_ERR_MALFORMED;
        }
        /* A payload length of 0 means a jumbogram, which we do not take. */
        end = IPSECIF_IP6_HLEN + (size_t)ipsecif_load16(p + 4);
        if (end == IPSECIF_IP6_HLEN || end > len) {
            return IPSECIF_ERR_MALFORMED;
        }
        if (!ipsecif_v6_walk(p, end, &c) || c.frag) {
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

        if (end - off < IPSECIF_UDP_HLEN) {
            return IPSECIF_ERR_MALFORMED;
        }
        ulen = ipsecif_load16(p + off + 4);
        if (ulen < IPSECIF_UDP_HLEN || ulen > end - off) {
            return IPSECIF_ERR_MALFORMED;
        }
        /* The checksum is not verified: ESP authenticates what it carries,
         * and a damaged port only leads to an SA that fails the ICV. */
        m.sport = ipsecif_load16(p + off);
        m.dport = ipsecif_load16(p + off + 2);
        end = off + ulen;
        esp_off = off + IPSECIF_UDP_HLEN;
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

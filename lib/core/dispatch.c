/*
 * The data path: inner packets routed into an interface go out as ESP;
 * outer ESP (or ESP in UDP) comes in, is verified, checked against the
 * inbound policy and delivered to its interface. Every drop is counted once,
 * globally and on the interface when one is known.
 */
#include "core/ctx.h"

#define COUNT(ctx, ifp, field)                                                                     \
    do {                                                                                           \
        (ctx)->stats.field++;                                                                      \
        if ((ifp) != NULL) {                                                                       \
            (ifp)->stats.field++;                                                                  \
        }                                                                                          \
    } while (0)

/* RFC 7600: the IPv4 dummy address, for ICMP errors with no better source. */
static const uint8_t dummy4[4] = {192, 0, 0, 8};

/* Turn an oversize inner packet into ICMP too-big and hand it back. */
static void send_toobig(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                        const struct ipsecif_inner *in)
{
    struct ipsecif_addr src;

    memset(&src, 0, sizeof(src));
    if (in->family == IPSECIF_AF_INET) {
        if (!ipsecif_addr_is_unspec(&ifp->local4)) {
            src = ifp->local4;
        } else if (ifp->src.family == IPSECIF_AF_INET) {
            src = ifp->src;
        } else {
            src.family = IPSECIF_AF_INET;
            memcpy(src.bytes, dummy4, 4);
        }
    } else {
        if (!ipsecif_addr_is_unspec(&ifp->local6)) {
            src = ifp->local6;
        } else if (ifp->src.family == IPSECIF_AF_INET6) {
            src = ifp->src;
        } else {
            src.family = IPSECIF_AF_INET6;
            memcpy(src.bytes, ipsecif_buf_data(pkt) + 24, 16);
        }
    }
    if (ipsecif_icmp_toobig(pkt, &src, ifp->mtu) != IPSECIF_OK) {
        return;
    }
    if (ctx->port->deliver_icmp != NULL) {
        ctx->port->deliver_icmp(ctx->user, ifp, pkt);
    } else {
        ctx->port->deliver_inner(ctx->user, ifp, pkt);
    }
}

/*
 * The interface whose outer packet this inner packet is, or NULL: ESP, or
 * ESP in UDP on a NAT-T interface's ports, from an interface's tunnel source
 * to its destination (the direction we send in). One tunnel-hash lookup.
 * A later IPv4 fragment of ESP counts by its addresses alone; a later
 * fragment of UDP carries no ports and is not recognized.
 */
static struct ipsecif_if *nested_of(struct ipsecif_ctx *ctx, const struct ipsecif_buf *pkt,
                                    const struct ipsecif_inner *in)
{
    const uint8_t *p = ipsecif_buf_data(pkt);
    struct ipsecif_addr src, dst;
    uint16_t sport = 0, dport = 0;
    size_t hlen, alen;
    bool first = true;
    uint8_t proto;

    memset(&src, 0, sizeof(src));
    memset(&dst, 0, sizeof(dst));
    src.family = in->family;
    dst.family = in->family;
    if (in->family == IPSECIF_AF_INET) {
        hlen = (size_t)(p[0] & 0x0f) * 4;
        alen = 4;
        proto = p[9];
        first = (ipsecif_load16(p + 6) & 0x1fff) == 0;
        memcpy(src.bytes, p + 12, alen);
        memcpy(dst.bytes, p + 16, alen);
    } else {
        hlen = 40;
        alen = 16;
        proto = p[6];
        memcpy(src.bytes, p + 8, alen);
        memcpy(dst.bytes, p + 24, alen);
        /* A fragment header is the one extension the host adds to ours. */
        if (proto == 44 && pkt->len >= 48) {
            proto = p[40];
            first = (ipsecif_load16(p + 42) & 0xfff8) == 0;
            hlen = 48;
        }
    }
    if (proto == IPSECIF_IPPROTO_UDP) {
        /* ESP in UDP has a nonzero SPI where IKE has its zero marker, and
         * more than the one byte of a keepalive. */
        if (!first || pkt->len < hlen + 16 || ipsecif_load32(p + hlen + 8) == 0) {
            return NULL;
        }
        sport = ipsecif_load16(p + hlen);
        dport = ipsecif_load16(p + hlen + 2);
        if (sport == 0 && dport == 0) {
            return NULL;
        }
    } else if (proto != IPSECIF_IPPROTO_ESP) {
        return NULL;
    }
    return ipsecif_if_lookup_outer(ctx, &src, &dst, sport, dport);
}

/* Depth of ifp's outer packets: a deeper one holds for IPSECIF_NEST_HOLD_MS
 * so that plain packets interleaved with a looping one do not reset it. */
static void note_depth(struct ipsecif_if *ifp, uint8_t depth, uint64_t now)
{
    if (depth >= ifp->nest_depth || now >= ifp->nest_hold) {
        ifp->nest_depth = depth;
        ifp->nest_hold = now + IPSECIF_NEST_HOLD_MS;
    }
}

/* "<name>: recursively called too many times(<n>)", NetBSD's words; at most
 * once per IPSECIF_NEST_HOLD_MS per interface, the counter has the rest. */
static void log_nested(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, unsigned n, uint64_t now)
{
#if IPSECIF_LOG
    static const char text[] = ": recursively called too many times(";
    char msg[IPSECIF_IFNAME_SIZE + sizeof(text) + 8];
    char digits[4];
    size_t len, k = 0;

    if (ifp->nest_logged != 0 && now - ifp->nest_logged < IPSECIF_NEST_HOLD_MS) {
        return;
    }
    ifp->nest_logged = now != 0 ? now : 1;
    len = strlen(ifp->name);
    memcpy(msg, ifp->name, len);
    memcpy(msg + len, text, sizeof(text) - 1);
    len += sizeof(text) - 1;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0 && k < sizeof(digits));
    while (k > 0) {
        msg[len++] = digits[--k];
    }
    msg[len++] = ')';
    msg[len] = '\0';
    ipsecif_log(ctx, IPSECIF_LOG_WARN, msg);
#else
    (void)ctx;
    (void)ifp;
    (void)n;
    (void)now;
#endif
}

int ipsecif_if_output(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                      uint64_t now)
{
    struct ipsecif_outer_meta meta;
    struct ipsecif_sp *sp;
    struct ipsecif_sa *sa = NULL;
    struct ipsecif_if *under;
    struct ipsecif_inner in;
    uint16_t sport = 0, dport = 0;
    uint8_t level, otos;
    unsigned depth = 0;
    size_t inner_len;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || ifp == NULL || !ifp->in_use ||
        pkt == NULL || pkt->base == NULL || pkt->off > pkt->cap || pkt->len > pkt->cap - pkt->off) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    if ((ifp->flags & IPSECIF_IFF_UP) == 0 || !ifp->has_tunnel) {
        COUNT(ctx, ifp, out_down);
        return IPSECIF_ERR_DOWN;
    }
    rc = ipsecif_inner_parse(pkt, &in);
    if (rc != IPSECIF_OK) {
        COUNT(ctx, ifp, out_malformed);
        return rc;
    }
    /* No mbuf tag tells how many interfaces a packet has passed; an outer
     * packet of ours has passed at least the one that sent it. */
    under = nested_of(ctx, pkt, &in);
    if (under != NULL) {
        depth = under->nest_depth > 0 ? under->nest_depth : 1;
        if (depth + 1 > ctx->ifs.max_nesting) {
            COUNT(ctx, ifp, out_nested);
            log_nested(ctx, ifp, depth + 1, now);
            return IPSECIF_ERR_NESTED;
        }
    }
    inner_len = pkt->len;
    sp = ifp->sp[in.family == IPSECIF_AF_INET ? IPSECIF_IFPOL_V4_OUT : IPSECIF_IFPOL_V6_OUT];
    sp->pol.lastused = now;
    if (sp->pol.action == IPSECIF_ACTION_DISCARD) {
        COUNT(ctx, ifp, out_polvio);
        return IPSECIF_ERR_DISCARD;
    }
    if (inner_len > ifp->mtu && (in.family == IPSECIF_AF_INET6 || in.df)) {
        COUNT(ctx, ifp, out_toobig);
        send_toobig(ctx, ifp, pkt, &in);
        return IPSECIF_ERR_TOOBIG;
    }
    if ((ifp->flags & IPSECIF_IFF_LINK0) != 0) {
        sport = ipsecif_if_local_port(ifp);
        dport = ipsecif_if_remote_port(ifp);
    }
    if (sp->pol.action == IPSECIF_ACTION_IPSEC) {
        level = ipsecif_spd_level(ctx, ifp->src.family, &sp->pol.req[0]);
        sa = ipsecif_sadb_lookup_out(ctx, &sp->pol.req[0], level, &ifp->src, &ifp->dst, sport,
                                     dport);
        if (sa == NULL && level != IPSECIF_LEVEL_USE) {
            ipsecif_raise_acquire(ctx, sp, 0, &ifp->src, &ifp->dst, sport, dport, now);
            COUNT(ctx, ifp, out_nosa);
            return IPSECIF_ERR_NOSA;
        }
    }

    otos = (uint8_t)((in.tos & 0xfc) |
                     (ipsecif_ecn_encap(in.tos, (ifp->flags & IPSECIF_IFF_LINK1) != 0) & 3));
    if (sa != NULL) {
        rc = ipsecif_esp_output(ctx, sa, pkt, in.nh);
        if (rc != IPSECIF_OK) {
            if (rc == IPSECIF_ERR_SEQWRAP) {
                COUNT(ctx, ifp, out_seqwrap);
                ipsecif_sadb_kill(ctx, sa, IPSECIF_EXPIRE_SEQWRAP);
            } else if (rc == IPSECIF_ERR_NOROOM) {
                COUNT(ctx, ifp, out_noroom);
            } else {
                COUNT(ctx, ifp, out_crypto);
            }
            return rc;
        }
        sa->stats.packets++;
        sa->stats.bytes += inner_len;
        (void)ipsecif_sadb_account(ctx, sa, inner_len, now);
        rc = ipsecif_encap_outer(ctx, pkt, &ifp->src, &ifp->dst, sport, dport, otos, in.df, &meta);
    } else {
        /* Level use without an SA: plain IP in IP. */
        rc = ipsecif_encap_outer(ctx, pkt, &ifp->src, &ifp->dst, 0, 0, otos, in.df, &meta);
        if (rc == IPSECIF_OK) {
            uint8_t *h = ipsecif_buf_data(pkt);

            if (meta.family == IPSECIF_AF_INET) {
                h[9] = in.nh;
                h[10] = 0;
                h[11] = 0;
                ipsecif_store16(h + 10, ipsecif_csum_fold(ipsecif_csum_add(0, h, 20)));
            } else {
                h[6] = in.nh;
            }
        }
    }
    if (rc != IPSECIF_OK) {
        COUNT(ctx, ifp, out_noroom);
        return rc;
    }
    /* Before the send: a port may route the packet straight back in. */
    note_depth(ifp, (uint8_t)(depth + 1), now);
    rc = ctx->port->send_outer(ctx->user, ifp, &meta, pkt);
    if (rc != 0) {
        COUNT(ctx, ifp, out_port);
        return IPSECIF_ERR_PORT;
    }
    COUNT(ctx, ifp, out_success);
    ctx->stats.out_bytes += inner_len;
    ifp->stats.out_bytes += inner_len;
    return IPSECIF_OK;
}

int ipsecif_input(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now)
{
    struct ipsecif_outer_meta meta;
    uint8_t proto = 0;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || pkt == NULL || pkt->base == NULL ||
        pkt->off > pkt->cap || pkt->len > pkt->cap - pkt->off) {
        return IPSECIF_ERR_ARG;
    }
    memset(&meta, 0, sizeof(meta));
    rc = ipsecif_decap_outer(pkt, &meta, &proto);
    if (rc == IPSECIF_ERR_PROTO) {
        ctx->stats.in_notours++;
        return rc;
    }
    if (rc != IPSECIF_OK) {
        ctx->stats.in_malformed++;
        return rc;
    }
    if (proto == IPSECIF_IPPROTO_UDP &&
        ipsecif_if_lookup_outer(ctx, &meta.dst, &meta.src, meta.dport, meta.sport) == NULL) {
        /* UDP that no NAT-T interface listens for: the host's business. */
        ctx->stats.in_notours++;
        return IPSECIF_ERR_PROTO;
    }
    return ipsecif_input_esp(ctx, &meta, pkt, now);
}

/* Does the SA satisfy the inbound policy for this decapsulated packet? */
static bool policy_allows(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                          uint8_t nh, const struct ipsecif_sa *sa, uint64_t now)
{
    struct ipsecif_selector sel;
    struct ipsecif_sp *sp;
    const struct ipsecif_ipsecreq *req;
    uint8_t level;

    memset(&sel, 0, sizeof(sel));
    sel.src = meta->src;
    sel.dst = meta->dst;
    sel.src_plen = (uint8_t)(ipsecif_addr_len(meta->src.family) * 8);
    sel.dst_plen = sel.src_plen;
    sel.ulproto = nh;
    sp = ipsecif_spd_match(ctx, IPSECIF_DIR_IN, &sel);
    if (sp == NULL) {
        uint8_t key = meta->src.family == IPSECIF_AF_INET ? IPSECIF_SYSCTL_DEF_POLICY
                                                          : IPSECIF_SYSCTL6_DEF_POLICY;

        return ctx->spd.sysctl[key] != 0;
    }
    sp->pol.lastused = now;
    if (sp->pol.action == IPSECIF_ACTION_DISCARD) {
        return false;
    }
    if (sp->pol.action == IPSECIF_ACTION_NONE || sp->pol.nreq == 0) {
        return true;
    }
    req = &sp->pol.req[0];
    if (req->proto != sa->proto) {
        return false;
    }
    if (sa->mode != IPSECIF_MODE_ANY && sa->mode != req->mode) {
        return false;
    }
    level = ipsecif_spd_level(ctx, meta->src.family, req);
    if (level == IPSECIF_LEVEL_UNIQUE && sa->reqid != req->reqid) {
        return false;
    }
    return true;
}

int ipsecif_input_esp(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                      struct ipsecif_buf *pkt, uint64_t now)
{
    struct ipsecif_if *ifp;
    struct ipsecif_sa *sa;
    struct ipsecif_inner in;
    bool natt;
    uint8_t nh = 0;
    size_t plen;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || meta == NULL || pkt == NULL ||
        pkt->base == NULL || pkt->off > pkt->cap || pkt->len > pkt->cap - pkt->off ||
        meta->src.family != meta->dst.family || ipsecif_addr_len(meta->src.family) == 0) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    natt = meta->sport != 0 || meta->dport != 0;
    ifp = ipsecif_if_lookup_outer(ctx, &meta->dst, &meta->src, meta->dport, meta->sport);
    if (natt) {
        const uint8_t *p = ipsecif_buf_data(pkt);

        if (pkt->len == 1 && p[0] == 0xff) {
            COUNT(ctx, ifp, in_natt_keepalive);
            return IPSECIF_OK;
        }
        if (pkt->len >= 4 && ipsecif_load32(p) == 0) {
            /* Non-ESP marker: IKE, for the key management daemon. */
            ctx->stats.in_notours++;
            return IPSECIF_ERR_PROTO;
        }
    }
    if (pkt->len < 8) {
        COUNT(ctx, ifp, in_malformed);
        return IPSECIF_ERR_MALFORMED;
    }
    sa = ipsecif_sadb_lookup_spi(ctx, IPSECIF_IPPROTO_ESP, &meta->dst,
                                 ipsecif_load32(ipsecif_buf_data(pkt)));
    if (sa == NULL || sa->state == IPSECIF_SA_LARVAL || sa->state == IPSECIF_SA_DEAD) {
        COUNT(ctx, ifp, in_badspi);
        return IPSECIF_ERR_BADSPI;
    }
    if (natt != (sa->natt_sport != 0 || sa->natt_dport != 0)) {
        /* ESP in UDP on an SA without UDP encapsulation, or the reverse. */
        COUNT(ctx, ifp, in_polvio);
        return IPSECIF_ERR_POLICY;
    }
    rc = ipsecif_esp_input(ctx, sa, pkt, &nh);
    switch (rc) {
    case IPSECIF_OK:
        break;
    case IPSECIF_ERR_REPLAY:
        COUNT(ctx, ifp, in_replay);
        return rc;
    case IPSECIF_ERR_AUTH:
        COUNT(ctx, ifp, in_auth);
        return rc;
    case IPSECIF_ERR_BADPAD:
        COUNT(ctx, ifp, in_badpad);
        return rc;
    case IPSECIF_ERR_MALFORMED:
        COUNT(ctx, ifp, in_malformed);
        return rc;
    case IPSECIF_ERR_NOROOM:
        COUNT(ctx, ifp, in_noroom);
        return rc;
    default:
        COUNT(ctx, ifp, in_crypto);
        return rc;
    }
    plen = pkt->len;
    sa->stats.packets++;
    sa->stats.bytes += plen;
    (void)ipsecif_sadb_account(ctx, sa, plen, now);

    if ((nh != IPSECIF_IPPROTO_IPV4 && nh != IPSECIF_IPPROTO_IPV6) || ifp == NULL) {
        /* Authentic, but no interface takes it: nothing allows it in. */
        COUNT(ctx, ifp, in_polvio);
        return IPSECIF_ERR_POLICY;
    }
    if (!policy_allows(ctx, meta, nh, sa, now)) {
        COUNT(ctx, ifp, in_polvio);
        return IPSECIF_ERR_POLICY;
    }
    rc = ipsecif_inner_parse(pkt, &in);
    if (rc != IPSECIF_OK || in.nh != nh) {
        COUNT(ctx, ifp, in_malformed);
        return IPSECIF_ERR_MALFORMED;
    }
    if ((ifp->flags & IPSECIF_IFF_UP) == 0) {
        COUNT(ctx, ifp, in_polvio);
        return IPSECIF_ERR_DOWN;
    }
    if ((ifp->flags & IPSECIF_IFF_LINK1) != 0) {
        int ecn = ipsecif_ecn_decap(meta->tos, in.tos);

        if (ecn < 0) {
            COUNT(ctx, ifp, in_ecn);
            return IPSECIF_ERR_ECN;
        }
        if ((uint8_t)(ecn & 3) != (in.tos & 3)) {
            ipsecif_inner_set_ecn(pkt, in.family, (uint8_t)ecn);
        }
    }
    ctx->port->deliver_inner(ctx->user, ifp, pkt);
    COUNT(ctx, ifp, in_success);
    ctx->stats.in_bytes += pkt->len;
    ifp->stats.in_bytes += pkt->len;
    return IPSECIF_OK;
}

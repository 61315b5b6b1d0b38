/*
 * The data path: inner packets routed into an interface go out as ESP;
 * outer ESP (or ESP in UDP) comes in, is verified, checked against the
 * inbound policy and delivered to its interface. Every drop is counted once,
 * globally and on the interface when one is known.
 */
#include "core/ctx.h"

/* Which counter a drop verdict increments, one table per direction; a
 * verdict not listed counts as the last entry's (rc 0). global: only the
 * context's counter (the packet is not the interface's business). */
struct drop_count {
    int rc;
    uint16_t off; /* offsetof(struct ipsecif_stats, counter) */
    bool global;
};
#define DROP(rc, field, global)                                                                    \
    {                                                                                              \
        rc, offsetof(struct ipsecif_stats, field), global                                          \
    }

static const struct drop_count out_drops[] = {
    DROP(IPSECIF_ERR_DOWN, out_down, false),
    DROP(IPSECIF_ERR_MALFORMED, out_malformed, false),
    DROP(IPSECIF_ERR_NESTED, out_nested, false),
    DROP(IPSECIF_ERR_DISCARD, out_polvio, false),
    DROP(IPSECIF_ERR_TOOBIG, out_toobig, false),
    DROP(IPSECIF_ERR_NOSA, out_nosa, false),
    DROP(IPSECIF_ERR_SEQWRAP, out_seqwrap, false),
    DROP(IPSECIF_ERR_NOROOM, out_noroom, false),
    DROP(IPSECIF_ERR_ARG, out_noroom, false), /* an outer header over 64 KiB */
    DROP(IPSECIF_ERR_PORT, out_port, false),
    DROP(IPSECIF_ERR_UNSUPPORTED, out_malformed, false), /* host: headers AH/ESP cannot take */
    DROP(0, out_crypto, false),
};

static const struct drop_count in_drops[] = {
    DROP(IPSECIF_ERR_PROTO, in_notours, true),
    DROP(IPSECIF_ERR_MALFORMED, in_malformed, false),
    DROP(IPSECIF_ERR_BADSPI, in_badspi, false),
    DROP(IPSECIF_ERR_POLICY, in_polvio, false),
    DROP(IPSECIF_ERR_DOWN, in_polvio, false),
    DROP(IPSECIF_ERR_REPLAY, in_replay, false),
    DROP(IPSECIF_ERR_AUTH, in_auth, false),
    DROP(IPSECIF_ERR_BADPAD, in_badpad, false),
    DROP(IPSECIF_ERR_NOROOM, in_noroom, false),
    DROP(IPSECIF_ERR_ECN, in_ecn, false),
    DROP(IPSECIF_ERR_UNSUPPORTED, in_malformed, false), /* host: headers AH cannot check */
    DROP(0, in_crypto, false),
};

static void bump(struct ipsecif_stats *st, uint16_t off)
{
    uint64_t *c = (uint64_t *)(void *)((uint8_t *)st + off);

    (*c)++;
}

/* Count a packet once, globally and on the interface when one is known. */
static void count(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, uint16_t off)
{
    bump(&ctx->stats, off);
    if (ifp != NULL) {
        bump(&ifp->stats, off);
    }
}

static void count_drop(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                       const struct drop_count *tab, int rc)
{
    while (tab->rc != rc && tab->rc != 0) {
        tab++;
    }
    count(ctx, tab->global ? NULL : ifp, tab->off);
}

void ipsecif_count_out_drop(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, int rc)
{
    count_drop(ctx, ifp, out_drops, rc);
}

void ipsecif_count_in_drop(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, int rc)
{
    count_drop(ctx, ifp, in_drops, rc);
}

#define COUNT(ctx, ifp, field) count((ctx), (ifp), offsetof(struct ipsecif_stats, field))

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

/* What nested_of() reads of an inner packet's IP header. */
struct nest_key {
    struct ipsecif_addr src, dst;
    size_t hlen; /* up to the transport header */
    uint8_t proto;
    bool first; /* not a later fragment */
};

static void nest_addrs(struct nest_key *k, const uint8_t *a, size_t alen)
{
    memcpy(k->src.bytes, a, alen);
    memcpy(k->dst.bytes, a + alen, alen);
}

static void nest_ip4(struct nest_key *k, const uint8_t *p)
{
    k->hlen = (size_t)(p[0] & 0x0f) * 4;
    k->proto = p[9];
    k->first = (ipsecif_load16(p + 6) & 0x1fff) == 0;
    nest_addrs(k, p + 12, 4);
}

static void nest_ip6(struct nest_key *k, const uint8_t *p, size_t len)
{
    k->hlen = 40;
    k->proto = p[6];
    nest_addrs(k, p + 8, 16);
    /* A fragment header is the one extension the host adds to ours. */
    if (k->proto == 44 && len >= 48) {
        k->proto = p[40];
        k->first = (ipsecif_load16(p + 42) & 0xfff8) == 0;
        k->hlen = 48;
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
    uint16_t sport = 0, dport = 0;
    struct nest_key k;

    memset(&k.src, 0, sizeof(k.src));
    memset(&k.dst, 0, sizeof(k.dst));
    k.src.family = in->family;
    k.dst.family = in->family;
    k.first = true;
    if (in->family == IPSECIF_AF_INET) {
        nest_ip4(&k, p);
    } else {
        nest_ip6(&k, p, pkt->len);
    }
    if (k.proto == IPSECIF_IPPROTO_UDP) {
        /* Only link0 interfaces send ESP in UDP; it has a nonzero SPI where
         * IKE has its zero marker, and more than the one byte of a keepalive. */
        if (ctx->ifs.natt_tunnels == 0 || !k.first || pkt->len < k.hlen + 16 ||
            ipsecif_load32(p + k.hlen + 8) == 0) {
            return NULL;
        }
        sport = ipsecif_load16(p + k.hlen);
        dport = ipsecif_load16(p + k.hlen + 2);
        if (sport == 0 && dport == 0) {
            return NULL;
        }
    } else if (k.proto != IPSECIF_IPPROTO_ESP) {
        return NULL;
    }
    return ipsecif_if_lookup_outer(ctx, &k.src, &k.dst, sport, dport);
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

/* What the output stages learn about one packet. */
struct out_pkt {
    struct ipsecif_inner in;
    struct ipsecif_outer_meta meta;
    struct ipsecif_sp *sp;
    struct ipsecif_sa *sa; /* NULL: level use without an SA, plain IP in IP */
    uint16_t sport, dport; /* NAT-T ports, 0 without link0 */
    unsigned depth;        /* interfaces the packet has passed */
    size_t inner_len;
};

/* Stage 1: the interface is up and the inner packet is one it may carry. */
static int out_check(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                     struct out_pkt *o, uint64_t now)
{
    struct ipsecif_if *under;
    int rc;

    if ((ifp->flags & IPSECIF_IFF_UP) == 0 || !ifp->has_tunnel) {
        return IPSECIF_ERR_DOWN;
    }
    rc = ipsecif_inner_parse(pkt, &o->in);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    /* No mbuf tag tells how many interfaces a packet has passed; an outer
     * packet of ours has passed at least the one that sent it. */
    under = nested_of(ctx, pkt, &o->in);
    if (under != NULL) {
        o->depth = under->nest_depth > 0 ? under->nest_depth : 1;
        if (o->depth + 1 > ctx->ifs.max_nesting) {
            log_nested(ctx, ifp, o->depth + 1, now);
            return IPSECIF_ERR_NESTED;
        }
    }
    o->inner_len = pkt->len;
    return IPSECIF_OK;
}

/* Stage 2: the interface's policy for the family, the MTU, and the SA. */
static int out_policy(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                      struct out_pkt *o, uint64_t now)
{
    uint8_t level;

    o->sp = ifp->sp[o->in.family == IPSECIF_AF_INET ? IPSECIF_IFPOL_V4_OUT : IPSECIF_IFPOL_V6_OUT];
    o->sp->pol.lastused = now;
    if (o->sp->pol.action == IPSECIF_ACTION_DISCARD) {
        return IPSECIF_ERR_DISCARD;
    }
    if (o->inner_len > ifp->mtu && (o->in.family == IPSECIF_AF_INET6 || o->in.df)) {
        send_toobig(ctx, ifp, pkt, &o->in);
        return IPSECIF_ERR_TOOBIG;
    }
    if ((ifp->flags & IPSECIF_IFF_LINK0) != 0) {
        o->sport = ipsecif_if_local_port(ifp);
        o->dport = ipsecif_if_remote_port(ifp);
    }
    if (o->sp->pol.action != IPSECIF_ACTION_IPSEC) {
        return IPSECIF_OK;
    }
    level = ipsecif_spd_level(ctx, ifp->src.family, &o->sp->pol.req[0]);
    o->sa = ipsecif_sadb_lookup_out(ctx, &o->sp->pol.req[0], level, &ifp->src, &ifp->dst, o->sport,
                                    o->dport);
    if (o->sa == NULL && level != IPSECIF_LEVEL_USE) {
        ipsecif_raise_acquire(ctx, o->sp, 0, &ifp->src, &ifp->dst, o->sport, o->dport, now);
        return IPSECIF_ERR_NOSA;
    }
    return IPSECIF_OK;
}

/* Level use without an SA: plain IP in IP, the outer header says so. */
static int out_plain(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                     struct out_pkt *o, uint8_t otos)
{
    int rc = ipsecif_encap_outer(ctx, pkt, &ifp->src, &ifp->dst, 0, 0, otos, o->in.df, &o->meta);

    if (rc != IPSECIF_OK) {
        return rc;
    }
    ipsecif_outer_set_proto(pkt, &o->meta, o->in.nh);
    return IPSECIF_OK;
}

/* Stage 3: ESP in place, then the outer header. */
static int out_protect(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                       struct out_pkt *o, uint64_t now)
{
    bool ecn_friendly = (ifp->flags & IPSECIF_IFF_LINK1) != 0;
    uint8_t otos = (uint8_t)((o->in.tos & 0xfc) | (ipsecif_ecn_encap(o->in.tos, ecn_friendly) & 3));
    int rc;

    if (o->sa == NULL) {
        return out_plain(ctx, ifp, pkt, o, otos);
    }
    rc = ipsecif_esp_output(ctx, o->sa, pkt, o->in.nh);
    if (rc == IPSECIF_ERR_SEQWRAP) {
        ipsecif_sadb_kill(ctx, o->sa, IPSECIF_EXPIRE_SEQWRAP);
    }
    if (rc != IPSECIF_OK) {
        return rc;
    }
    o->sa->stats.packets++;
    o->sa->stats.bytes += o->inner_len;
    (void)ipsecif_sadb_account(ctx, o->sa, o->inner_len, now);
    rc = ipsecif_encap_outer(ctx, pkt, &ifp->src, &ifp->dst, o->sport, o->dport, otos, o->in.df,
                             &o->meta);
    return rc;
}

/* Stage 4: to the port. */
static int out_send(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                    struct out_pkt *o, uint64_t now)
{
    /* Before the send: a port may route the packet straight back in. */
    note_depth(ifp, (uint8_t)(o->depth + 1), now);
    if (ctx->port->send_outer(ctx->user, ifp, &o->meta, pkt) != 0) {
        return IPSECIF_ERR_PORT;
    }
    return IPSECIF_OK;
}

int ipsecif_if_output(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                      uint64_t now)
{
    struct out_pkt o;
    int verdict = IPSECIF_ERR_INTERNAL; /* drop unless every stage passes */
    int rc = IPSECIF_ERR_INTERNAL;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || ifp == NULL || !ifp->in_use ||
        !ipsecif_buf_valid(pkt)) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    memset(&o, 0, sizeof(o));
    if ((rc = out_check(ctx, ifp, pkt, &o, now)) != IPSECIF_OK ||
        (rc = out_policy(ctx, ifp, pkt, &o, now)) != IPSECIF_OK ||
        (rc = out_protect(ctx, ifp, pkt, &o, now)) != IPSECIF_OK ||
        (rc = out_send(ctx, ifp, pkt, &o, now)) != IPSECIF_OK) {
        goto out;
    }
    verdict = IPSECIF_OK;
out:
    if (verdict != IPSECIF_OK) {
        count_drop(ctx, ifp, out_drops, rc);
        return rc;
    }
    COUNT(ctx, ifp, out_success);
    ctx->stats.out_bytes += o.inner_len;
    ifp->stats.out_bytes += o.inner_len;
    return IPSECIF_OK;
}

int ipsecif_input(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now)
{
    struct ipsecif_outer_meta meta;
    uint8_t proto = 0;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || !ipsecif_buf_valid(pkt)) {
        return IPSECIF_ERR_ARG;
    }
    memset(&meta, 0, sizeof(meta));
    rc = ipsecif_decap_outer(pkt, &meta, &proto);
    if (ctx->port->deliver_host != NULL) {
        /* Host traffic: AH, and ESP between addresses no tunnel has. */
        if (rc == IPSECIF_ERR_PROTO && proto == IPSECIF_IPPROTO_AH) {
            return ipsecif_host_deliver(ctx, pkt, now);
        }
        if (rc == IPSECIF_OK && proto == IPSECIF_IPPROTO_ESP &&
            ipsecif_if_lookup_outer(ctx, &meta.dst, &meta.src, 0, 0) == NULL) {
            ipsecif_buf_push(pkt, meta.esp_off);
            return ipsecif_host_deliver(ctx, pkt, now);
        }
        /* ESP in UDP for a host SA; keepalives and IKE go below. */
        if (rc == IPSECIF_OK && proto == IPSECIF_IPPROTO_UDP &&
            ipsecif_host_natt_ours(ctx, &meta, pkt) &&
            ipsecif_if_lookup_outer(ctx, &meta.dst, &meta.src, meta.dport, meta.sport) == NULL) {
            ipsecif_buf_push(pkt, meta.esp_off);
            return ipsecif_host_deliver(ctx, pkt, now);
        }
    }
    if (rc == IPSECIF_OK && proto == IPSECIF_IPPROTO_UDP &&
        ipsecif_if_lookup_outer(ctx, &meta.dst, &meta.src, meta.dport, meta.sport) == NULL) {
        /* UDP that no NAT-T interface listens for: the host's business. */
        rc = IPSECIF_ERR_PROTO;
    }
    if (rc != IPSECIF_OK) {
        count_drop(ctx, NULL, in_drops, rc);
        return rc;
    }
    return ipsecif_input_esp(ctx, &meta, pkt, now);
}

/* What the input stages learn about one packet. */
struct in_pkt {
    struct ipsecif_if *ifp; /* the interface of the outer pair, or NULL */
    struct ipsecif_sa *sa;
    struct ipsecif_inner in;
    uint8_t nh;
};

/* Not a verdict: a NAT keepalive, consumed. */
#define IN_KEEPALIVE 1

/* Stage 1: what ESP in UDP carries besides ESP (RFC 3948 section 2). */
static int in_natt(const struct ipsecif_outer_meta *meta, const struct ipsecif_buf *pkt)
{
    const uint8_t *p = ipsecif_buf_data(pkt);

    if (meta->sport == 0 && meta->dport == 0) {
        return IPSECIF_OK;
    }
    if (pkt->len == 1 && p[0] == 0xff) {
        return IN_KEEPALIVE;
    }
    if (pkt->len >= 4 && ipsecif_load32(p) == 0) {
        /* Non-ESP marker: IKE, for the key management daemon. */
        return IPSECIF_ERR_PROTO;
    }
    return IPSECIF_OK;
}

/* Stage 2: the SA by SPI, mature, with the same encapsulation. */
static int in_sa(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                 const struct ipsecif_buf *pkt, struct in_pkt *ip)
{
    bool natt = meta->sport != 0 || meta->dport != 0;
    struct ipsecif_sa *sa;

    if (pkt->len < 8) {
        return IPSECIF_ERR_MALFORMED;
    }
    sa = ipsecif_sadb_lookup_spi(ctx, IPSECIF_IPPROTO_ESP, &meta->dst,
                                 ipsecif_load32(ipsecif_buf_data(pkt)));
    if (sa == NULL || sa->state == IPSECIF_SA_LARVAL || sa->state == IPSECIF_SA_DEAD) {
        return IPSECIF_ERR_BADSPI;
    }
    if (natt != (sa->natt_sport != 0 || sa->natt_dport != 0)) {
        /* ESP in UDP on an SA without UDP encapsulation, or the reverse. */
        return IPSECIF_ERR_POLICY;
    }
    ip->sa = sa;
    return IPSECIF_OK;
}

/* Stage 3: verify and decrypt in place; the SA counts the use. */
static int in_open(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, struct in_pkt *ip,
                   uint64_t now)
{
    int rc = ipsecif_esp_input(ctx, ip->sa, pkt, &ip->nh);

    if (rc != IPSECIF_OK) {
        return rc;
    }
    ip->sa->stats.packets++;
    ip->sa->stats.bytes += pkt->len;
    (void)ipsecif_sadb_account(ctx, ip->sa, pkt->len, now);
    return IPSECIF_OK;
}

/* Stage 4: an interface takes it, the inbound policy allows it, the inner
 * header is sound and the interface is up. */
static int in_accept(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                     struct ipsecif_buf *pkt, struct in_pkt *ip, uint64_t now)
{
    if ((ip->nh != IPSECIF_IPPROTO_IPV4 && ip->nh != IPSECIF_IPPROTO_IPV6) || ip->ifp == NULL) {
        /* Authentic, but no interface takes it: nothing allows it in. */
        return IPSECIF_ERR_POLICY;
    }
    if (ipsecif_spd_check_in(ctx, meta, ip->nh, ip->sa, now) != IPSECIF_OK) {
        return IPSECIF_ERR_POLICY;
    }
    if (ipsecif_inner_parse(pkt, &ip->in) != IPSECIF_OK || ip->in.nh != ip->nh) {
        return IPSECIF_ERR_MALFORMED;
    }
    if ((ip->ifp->flags & IPSECIF_IFF_UP) == 0) {
        return IPSECIF_ERR_DOWN;
    }
    return IPSECIF_OK;
}

/* Stage 5: RFC 6040 decapsulation on an ECN-friendly interface. */
static int in_ecn(const struct ipsecif_outer_meta *meta, struct ipsecif_buf *pkt,
                  const struct in_pkt *ip)
{
    int ecn;

    if ((ip->ifp->flags & IPSECIF_IFF_LINK1) == 0) {
        return IPSECIF_OK;
    }
    ecn = ipsecif_ecn_decap(meta->tos, ip->in.tos);
    if (ecn < 0) {
        return IPSECIF_ERR_ECN;
    }
    if ((uint8_t)(ecn & 3) != (ip->in.tos & 3)) {
        ipsecif_inner_set_ecn(pkt, ip->in.family, (uint8_t)ecn);
    }
    return IPSECIF_OK;
}

int ipsecif_input_esp(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                      struct ipsecif_buf *pkt, uint64_t now)
{
    struct in_pkt ip;
    int verdict = IPSECIF_ERR_INTERNAL; /* drop unless every stage passes */
    int rc = IPSECIF_ERR_INTERNAL;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || meta == NULL || !ipsecif_buf_valid(pkt) ||
        meta->src.family != meta->dst.family || ipsecif_addr_len(meta->src.family) == 0) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    memset(&ip, 0, sizeof(ip));
    ip.ifp = ipsecif_if_lookup_outer(ctx, &meta->dst, &meta->src, meta->dport, meta->sport);
    if (ip.ifp == NULL && ctx->port->deliver_host != NULL &&
        ((meta->sport == 0 && meta->dport == 0) || ipsecif_host_natt_ours(ctx, meta, pkt))) {
        /* Host traffic: it needs its IP (and UDP) header back. */
        return ipsecif_input_payload(ctx, meta, IPSECIF_IPPROTO_ESP, pkt, now);
    }
    rc = in_natt(meta, pkt);
    if (rc == IN_KEEPALIVE) {
        COUNT(ctx, ip.ifp, in_natt_keepalive);
        return IPSECIF_OK;
    }
    if (rc != IPSECIF_OK || (rc = in_sa(ctx, meta, pkt, &ip)) != IPSECIF_OK ||
        (rc = in_open(ctx, pkt, &ip, now)) != IPSECIF_OK ||
        (rc = in_accept(ctx, meta, pkt, &ip, now)) != IPSECIF_OK ||
        (rc = in_ecn(meta, pkt, &ip)) != IPSECIF_OK) {
        goto out;
    }
    verdict = IPSECIF_OK;
out:
    if (verdict != IPSECIF_OK) {
        count_drop(ctx, ip.ifp, in_drops, rc);
        return rc;
    }
    ctx->port->deliver_inner(ctx->user, ip.ifp, pkt);
    COUNT(ctx, ip.ifp, in_success);
    ctx->stats.in_bytes += pkt->len;
    ip.ifp->stats.in_bytes += pkt->len;
    return IPSECIF_OK;
}

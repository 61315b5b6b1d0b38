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

static IPSECIF_COLD void count_drop(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
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
static IPSECIF_COLD void send_toobig(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                                     struct ipsecif_buf *pkt, const struct ipsecif_inner *in)
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
    uint8_t first_nh = in->family == IPSECIF_AF_INET ? p[9] : p[6];
    struct nest_key k;

    /* Most packets are neither ESP nor UDP for a NAT-T interface: they need
     * no key. An IPv6 fragment header may hide either. */
    if (first_nh != IPSECIF_IPPROTO_ESP &&
        (first_nh != IPSECIF_IPPROTO_UDP || ctx->ifs.natt_tunnels == 0) &&
        (first_nh != 44 || in->family != IPSECIF_AF_INET6)) {
        return NULL;
    }
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
static IPSECIF_COLD void log_nested(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, unsigned n,
                                    uint64_t now)
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

/* A fresh out_pkt. meta is written whole by the outer header's stage
 * before anything reads it, so it is left alone (zeroing the struct per
 * packet was a visible part of a small packet's cost). */
static void out_pkt_init(struct out_pkt *o)
{
    memset(&o->in, 0, sizeof(o->in));
    o->sp = NULL;
    o->sa = NULL;
    o->sport = 0;
    o->dport = 0;
    o->depth = 0;
    o->inner_len = 0;
}

/* The outbound SA a run of packets of one interface and family found: the
 * SADB does not change while the batch is framed, except when an SA is
 * killed, which empties this. */
struct out_cache {
    struct ipsecif_if *ifp;
    struct ipsecif_sa *sa;
    uint8_t family;
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

/* Stage 2: the interface's policy for the family, the MTU, and the SA
 * (from the cache when the packet before took the same way). */
static int out_policy(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                      struct out_pkt *o, struct out_cache *c, uint64_t now)
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
    if (c != NULL && c->sa != NULL && c->ifp == ifp && c->family == o->in.family) {
        o->sa = c->sa;
        return IPSECIF_OK;
    }
    level = ipsecif_spd_level(ctx, ifp->src.family, &o->sp->pol.req[0]);
    o->sa = ipsecif_sadb_lookup_out(ctx, &o->sp->pol.req[0], level, &ifp->src, &ifp->dst, o->sport,
                                    o->dport);
    if (o->sa == NULL && level != IPSECIF_LEVEL_USE) {
        ipsecif_raise_acquire(ctx, o->sp, 0, &ifp->src, &ifp->dst, o->sport, o->dport, now);
        return IPSECIF_ERR_NOSA;
    }
    if (c != NULL) {
        c->ifp = ifp;
        c->sa = o->sa;
        c->family = o->in.family;
    }
    return IPSECIF_OK;
}

/* Level use without an SA: plain IP in IP, the outer header says so. */
static IPSECIF_COLD int out_plain(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                                  struct ipsecif_buf *pkt, struct out_pkt *o, uint8_t otos)
{
    int rc = ipsecif_encap_outer(ctx, pkt, &ifp->src, &ifp->dst, 0, 0, otos, o->in.df, &o->meta);

    if (rc != IPSECIF_OK) {
        return rc;
    }
    ipsecif_outer_set_proto(pkt, &o->meta, o->in.nh);
    return IPSECIF_OK;
}

static uint8_t out_tos(const struct ipsecif_if *ifp, const struct out_pkt *o)
{
    bool ecn_friendly = (ifp->flags & IPSECIF_IFF_LINK1) != 0;

    return (uint8_t)((o->in.tos & 0xfc) | (ipsecif_ecn_encap(o->in.tos, ecn_friendly) & 3));
}

/* Stage 3a: frame ESP with sequence number seq (the SA dies when its
 * numbers are exhausted). */
static int out_frame(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, struct out_pkt *o,
                     uint64_t seq, struct ipsecif_esp_job *j)
{
    int rc = ipsecif_esp_out_prepare(ctx, o->sa, pkt, o->in.nh, seq, j);

    if (rc == IPSECIF_ERR_SEQWRAP) {
        ipsecif_sadb_kill(ctx, o->sa, IPSECIF_EXPIRE_SEQWRAP);
    }
    return rc;
}

/* Stage 3c (after the crypto): the SA counts the use, then the outer header. */
static int out_seal_done(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                         struct out_pkt *o, struct ipsecif_esp_job *j, uint64_t now)
{
    int rc = ipsecif_esp_out_finish(o->sa, pkt, j);

    if (rc != IPSECIF_OK) {
        return rc;
    }
    o->sa->stats.packets++;
    o->sa->stats.bytes += o->inner_len;
    (void)ipsecif_sadb_account(ctx, o->sa, o->inner_len, now);
    return ipsecif_encap_tpl(ctx, pkt, &ifp->otpl, out_tos(ifp, o), o->in.df, &o->meta);
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

/* The verdict counted once, globally and on the interface. */
static int out_count(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, const struct out_pkt *o,
                     int rc)
{
    if (rc != IPSECIF_OK) {
        count_drop(ctx, ifp, out_drops, rc);
        return rc;
    }
    COUNT(ctx, ifp, out_success);
    ctx->stats.out_bytes += o->inner_len;
    ifp->stats.out_bytes += o->inner_len;
    return IPSECIF_OK;
}

/* The next sequence number of sa, or 0 (refused as a wrap) after the last. */
static uint64_t next_seq(const struct ipsecif_sa *sa)
{
    return sa->seq_out == UINT64_MAX ? 0 : sa->seq_out + 1;
}

static bool if_ok(const struct ipsecif_if *ifp)
{
    return ifp != NULL && ifp->in_use;
}

IPSECIF_FLATTEN int ipsecif_if_output(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                                      struct ipsecif_buf *pkt, uint64_t now)
{
    struct ipsecif_esp_job j;
    struct ipsecif_esp_job *jp = &j;
    struct out_pkt o;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || !if_ok(ifp) || !ipsecif_buf_valid(pkt)) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    out_pkt_init(&o);
    rc = out_check(ctx, ifp, pkt, &o, now);
    if (rc == IPSECIF_OK) {
        rc = out_policy(ctx, ifp, pkt, &o, NULL, now);
    }
    if (rc == IPSECIF_OK && o.sa == NULL) {
        rc = out_plain(ctx, ifp, pkt, &o, out_tos(ifp, &o));
    } else if (rc == IPSECIF_OK) {
        rc = out_frame(ctx, pkt, &o, next_seq(o.sa), &j);
        if (rc == IPSECIF_OK) {
            ipsecif_esp_crypto(ctx->port->crypto, o.sa, &jp, 1, true);
            /* One packet alone uses its number only once it is sealed. */
            if (j.rc == IPSECIF_OK) {
                o.sa->seq_out = j.seq;
            }
            rc = out_seal_done(ctx, ifp, pkt, &o, &j, now);
        }
    }
    if (rc == IPSECIF_OK) {
        rc = out_send(ctx, ifp, pkt, &o, now);
    }
    return out_count(ctx, ifp, &o, rc);
}

/* One packet of an output batch between the stages. */
struct out_slot {
    struct out_pkt o;
    struct ipsecif_esp_job j;
    struct ipsecif_if *ifp;
    int rc;
    bool framed; /* ESP framed, waiting for the crypto */
    bool done;   /* in a crypto group already */
};

/*
 * Would framing another packet of len bytes on sa, behind the ones framed
 * on it in s[0..k), change what the packets after them find: the sequence
 * numbers run out, or one of them reaches a byte limit (the SA dies or goes
 * dying, and a lookup may then pick another)? Then the slice ends before it.
 */
static bool out_must_split(const struct out_slot *s, size_t k, const struct ipsecif_sa *sa,
                           size_t len)
{
    uint64_t bytes = len;
    size_t n = 0;
    size_t i;

    /* The common case, without a look at the slice: no byte limit to
     * reach and numbers for far more than a slice. */
    if (ipsecif_sadb_bytes_free(sa) &&
        sa->seq_out <
            ((sa->flags & IPSECIF_SA_F_ESN) != 0 ? UINT64_MAX : 0xffffffffu) - IPSECIF_BATCH_MAX) {
        return false;
    }
    for (i = 0; i < k; i++) {
        if (s[i].framed && s[i].o.sa == sa) {
            bytes += s[i].o.inner_len;
            n++;
        }
    }
    if (n == 0) {
        return false;
    }
    if (next_seq(sa) == 0 || ((sa->flags & IPSECIF_SA_F_ESN) == 0 && next_seq(sa) > 0xffffffffu)) {
        return true;
    }
    bytes += sa->bytes;
    return (sa->hard.bytes != 0 && bytes > sa->hard.bytes) ||
           (sa->soft.bytes != 0 && !sa->soft_sent && bytes >= sa->soft.bytes);
}

/* The crypto of every framed packet in s[0..n), one burst per SA. */
static void out_crypto(struct ipsecif_ctx *ctx, struct out_slot *s, size_t n)
{
    struct ipsecif_esp_job *jobs[IPSECIF_BATCH_MAX];
    size_t i, k, m;

    for (i = 0; i < n; i++) {
        if (!s[i].framed || s[i].done) {
            continue;
        }
        m = 0;
        for (k = i; k < n; k++) {
            if (s[k].framed && !s[k].done && s[k].o.sa == s[i].o.sa) {
                s[k].done = true;
                jobs[m++] = &s[k].j;
            }
        }
        ipsecif_esp_crypto(ctx->port->crypto, s[i].o.sa, jobs, m, true);
    }
}

/* Stages 1, 2 and 3a of a slice: returns how many packets it took (at
 * least one). Packets are framed in order, numbers taken as they go. */
IPSECIF_FLATTEN static size_t out_frame_slice(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                                              struct ipsecif_if *const *ifps,
                                              struct ipsecif_buf *const *pkts, size_t n,
                                              struct out_slot *s, uint64_t now)
{
    struct out_cache c = {NULL, NULL, 0};
    size_t k;

    for (k = 0; k < n && k < IPSECIF_BATCH_MAX; k++) {
        struct out_slot *x = &s[k];
        int rc;

        out_pkt_init(&x->o);
        x->framed = false;
        x->done = false;
        x->ifp = ifp != NULL ? ifp : ifps[k];
        if (!if_ok(x->ifp) || !ipsecif_buf_valid(pkts[k])) {
            x->ifp = NULL;
            x->rc = IPSECIF_ERR_ARG;
            continue;
        }
        rc = out_check(ctx, x->ifp, pkts[k], &x->o, now);
        if (rc == IPSECIF_OK) {
            rc = out_policy(ctx, x->ifp, pkts[k], &x->o, &c, now);
        }
        if (rc == IPSECIF_OK && x->o.sa != NULL) {
            if (out_must_split(s, k, x->o.sa, x->o.inner_len)) {
                break;
            }
            rc = out_frame(ctx, pkts[k], &x->o, next_seq(x->o.sa), &x->j);
            if (rc == IPSECIF_OK) {
                /* Taken now: the packets behind get the numbers after it. */
                x->o.sa->seq_out = x->j.seq;
                x->framed = true;
            } else if (rc == IPSECIF_ERR_SEQWRAP) {
                c.sa = NULL; /* killed */
            }
        }
        x->rc = rc;
    }
    return k;
}

IPSECIF_FLATTEN int ipsecif_if_output_batch(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                                            struct ipsecif_if *const *ifps,
                                            struct ipsecif_buf *const *pkts, size_t n, uint64_t now,
                                            int *results)
{
    struct out_slot s[IPSECIF_BATCH_MAX];
    size_t i = 0, k, m;
    int sent = 0;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || (n > 0 && pkts == NULL) ||
        (ifp == NULL && ifps == NULL && n > 0) || n > (size_t)INT32_MAX) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    while (i < n) {
        m = out_frame_slice(ctx, ifp, ifps != NULL ? ifps + i : NULL, pkts + i, n - i, s, now);
        out_crypto(ctx, s, m);
        for (k = 0; k < m; k++) {
            struct out_slot *x = &s[k];
            struct ipsecif_buf *pkt = pkts[i + k];
            int rc = x->rc;

            if (rc == IPSECIF_OK && x->framed) {
                rc = out_seal_done(ctx, x->ifp, pkt, &x->o, &x->j, now);
            } else if (rc == IPSECIF_OK) {
                rc = out_plain(ctx, x->ifp, pkt, &x->o, out_tos(x->ifp, &x->o));
            }
            if (rc == IPSECIF_OK) {
                rc = out_send(ctx, x->ifp, pkt, &x->o, now);
            }
            if (x->ifp != NULL) {
                rc = out_count(ctx, x->ifp, &x->o, rc);
            }
            sent += rc == IPSECIF_OK;
            if (results != NULL) {
                results[i + k] = rc;
            }
        }
        i += m;
    }
    return sent;
}

/* ---- Input ---- */

/* Not verdicts: host traffic (the packet is at its IP header again), a
 * payload of host traffic (the host path puts the header back), a NAT
 * keepalive consumed. */
#define IN_HOST 1
#define IN_HOST_PAYLOAD 2
#define IN_KEEPALIVE 3

/* ipsecif_input()'s first step: the outer header, and whose the packet is.
 * A verdict other than IPSECIF_OK and IN_HOST is a drop the caller counts
 * on the context only. */
static int in_outer(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                    struct ipsecif_outer_meta *meta)
{
    uint8_t proto = 0;
    int rc;

    /* meta is read only on success. */
    rc = ipsecif_decap_outer(pkt, meta, &proto);
    if (ctx->port->deliver_host != NULL) {
        /* Host traffic: AH, and ESP between addresses no tunnel has. */
        if (rc == IPSECIF_ERR_PROTO && proto == IPSECIF_IPPROTO_AH) {
            return IN_HOST;
        }
        if (rc == IPSECIF_OK && proto == IPSECIF_IPPROTO_ESP &&
            ipsecif_if_lookup_outer(ctx, &meta->dst, &meta->src, 0, 0) == NULL) {
            ipsecif_buf_push(pkt, meta->esp_off);
            return IN_HOST;
        }
        /* ESP in UDP for a host SA; keepalives and IKE go below. */
        if (rc == IPSECIF_OK && proto == IPSECIF_IPPROTO_UDP &&
            ipsecif_host_natt_ours(ctx, meta, pkt) &&
            ipsecif_if_lookup_outer(ctx, &meta->dst, &meta->src, meta->dport, meta->sport) ==
                NULL) {
            ipsecif_buf_push(pkt, meta->esp_off);
            return IN_HOST;
        }
    }
    if (rc == IPSECIF_OK && proto == IPSECIF_IPPROTO_UDP &&
        ipsecif_if_lookup_outer(ctx, &meta->dst, &meta->src, meta->dport, meta->sport) == NULL) {
        /* UDP that no NAT-T interface listens for: the host's business. */
        rc = IPSECIF_ERR_PROTO;
    }
    return rc;
}

IPSECIF_FLATTEN int ipsecif_input(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now)
{
    struct ipsecif_outer_meta meta;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || !ipsecif_buf_valid(pkt)) {
        return IPSECIF_ERR_ARG;
    }
    rc = in_outer(ctx, pkt, &meta);
    if (rc == IN_HOST) {
        return ipsecif_host_deliver(ctx, pkt, now);
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

/* What the packet before in a batch found, for one that comes the same
 * way: the interface of an outer address pair and ports, the SA of an SPI. */
struct in_cache {
    const struct ipsecif_outer_meta *meta;
    struct ipsecif_if *ifp;
    struct ipsecif_sa *sa;
    uint32_t spi;
    /* The inbound policy's verdict for (interface, next header, SA). */
    struct ipsecif_if *pol_ifp;
    const struct ipsecif_sa *pol_sa;
    struct ipsecif_sp *pol_sp;
    uint8_t pol_nh;
    int pol_rc;
};

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

static bool same_pair(const struct ipsecif_outer_meta *a, const struct ipsecif_outer_meta *b)
{
    return a->sport == b->sport && a->dport == b->dport && ipsecif_addr_eq(&a->src, &b->src) &&
           ipsecif_addr_eq(&a->dst, &b->dst);
}

/* Stage 2: the SA by SPI, mature, with the same encapsulation. */
static int in_sa(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                 const struct ipsecif_buf *pkt, struct in_pkt *ip, struct in_cache *c)
{
    bool natt = meta->sport != 0 || meta->dport != 0;
    struct ipsecif_sa *sa;
    uint32_t spi;

    if (pkt->len < 8) {
        return IPSECIF_ERR_MALFORMED;
    }
    spi = ipsecif_load32(ipsecif_buf_data(pkt));
    if (c != NULL && c->sa != NULL && c->spi == spi && ipsecif_addr_eq(&c->sa->dst, &meta->dst)) {
        sa = c->sa;
    } else {
        sa = ipsecif_sadb_lookup_spi(ctx, IPSECIF_IPPROTO_ESP, &meta->dst, spi);
    }
    if (sa == NULL || sa->state == IPSECIF_SA_LARVAL || sa->state == IPSECIF_SA_DEAD) {
        return IPSECIF_ERR_BADSPI;
    }
    if (natt != (sa->natt_sport != 0 || sa->natt_dport != 0)) {
        /* ESP in UDP on an SA without UDP encapsulation, or the reverse. */
        return IPSECIF_ERR_POLICY;
    }
    if (c != NULL) {
        c->sa = sa;
        c->spi = spi;
    }
    ip->sa = sa;
    return IPSECIF_OK;
}

/*
 * Stages up to the SA: the interface of the outer pair, host traffic
 * (IN_HOST_PAYLOAD), NAT-T's keepalives and IKE, the SA. meta has been
 * checked.
 */
static int in_front(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                    struct ipsecif_buf *pkt, struct in_pkt *ip, struct in_cache *c)
{
    int rc;

    memset(ip, 0, sizeof(*ip));
    if (c != NULL && c->meta != NULL && same_pair(c->meta, meta)) {
        ip->ifp = c->ifp;
    } else {
        ip->ifp = ipsecif_if_lookup_outer(ctx, &meta->dst, &meta->src, meta->dport, meta->sport);
    }
    if (ip->ifp == NULL && ctx->port->deliver_host != NULL &&
        ((meta->sport == 0 && meta->dport == 0) || ipsecif_host_natt_ours(ctx, meta, pkt))) {
        /* Host traffic: it needs its IP (and UDP) header back. */
        return IN_HOST_PAYLOAD;
    }
    if (c != NULL) {
        c->meta = meta;
        c->ifp = ip->ifp;
    }
    rc = in_natt(meta, pkt);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    return in_sa(ctx, meta, pkt, ip, c);
}

/* Stage 4: an interface takes it, the inbound policy allows it, the inner
 * header is sound and the interface is up. */
/* The inbound policy check, or its verdict for the packet before when that
 * came on the same interface (so the same outer addresses) with the same
 * next header and SA: the SPD does not change during a batch. */
static int in_policy(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                     const struct in_pkt *ip, struct in_cache *c, uint64_t now)
{
    struct ipsecif_sp *sp;
    int rc;

    if (c != NULL && c->pol_ifp == ip->ifp && c->pol_sa == ip->sa && c->pol_nh == ip->nh) {
        if (c->pol_sp != NULL) {
            c->pol_sp->pol.lastused = now;
        }
        return c->pol_rc;
    }
    rc = ipsecif_spd_check_in_sp(ctx, meta, ip->nh, ip->sa, now, &sp);
    if (c != NULL) {
        c->pol_ifp = ip->ifp;
        c->pol_sa = ip->sa;
        c->pol_sp = sp;
        c->pol_nh = ip->nh;
        c->pol_rc = rc;
    }
    return rc;
}

static int in_accept(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                     struct ipsecif_buf *pkt, struct in_pkt *ip, struct in_cache *c, uint64_t now)
{
    if ((ip->nh != IPSECIF_IPPROTO_IPV4 && ip->nh != IPSECIF_IPPROTO_IPV6) || ip->ifp == NULL) {
        /* Authentic, but no interface takes it: nothing allows it in. */
        return IPSECIF_ERR_POLICY;
    }
    if (in_policy(ctx, meta, ip, c, now) != IPSECIF_OK) {
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

/* Stages after the crypto: ESP's verdict (j: the packet was prepared and
 * went through the crypto; else rc is the verdict so far), the SA counts
 * the use, accept, ECN; then the packet is delivered or the drop counted. */
static int in_back(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                   struct ipsecif_buf *pkt, struct in_pkt *ip, struct ipsecif_esp_job *j, int rc,
                   struct in_cache *c, uint64_t now)
{
    if (j != NULL) {
        rc = ipsecif_esp_in_finish(ctx, ip->sa, pkt, j, &ip->nh);
    }
    if (rc == IPSECIF_OK) {
        ip->sa->stats.packets++;
        ip->sa->stats.bytes += pkt->len;
        (void)ipsecif_sadb_account(ctx, ip->sa, pkt->len, now);
        rc = in_accept(ctx, meta, pkt, ip, c, now);
    }
    if (rc == IPSECIF_OK) {
        rc = in_ecn(meta, pkt, ip);
    }
    if (rc != IPSECIF_OK) {
        count_drop(ctx, ip->ifp, in_drops, rc);
        return rc;
    }
    ctx->port->deliver_inner(ctx->user, ip->ifp, pkt);
    COUNT(ctx, ip->ifp, in_success);
    ctx->stats.in_bytes += pkt->len;
    ip->ifp->stats.in_bytes += pkt->len;
    return IPSECIF_OK;
}

static bool meta_ok(const struct ipsecif_outer_meta *meta)
{
    return meta != NULL && meta->src.family == meta->dst.family &&
           ipsecif_addr_len(meta->src.family) != 0;
}

IPSECIF_FLATTEN int ipsecif_input_esp(struct ipsecif_ctx *ctx,
                                      const struct ipsecif_outer_meta *meta,
                                      struct ipsecif_buf *pkt, uint64_t now)
{
    struct ipsecif_esp_job j;
    struct ipsecif_esp_job *jp = &j;
    struct in_pkt ip;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || !meta_ok(meta) ||
        !ipsecif_buf_valid(pkt)) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    rc = in_front(ctx, meta, pkt, &ip, NULL);
    if (rc == IN_HOST_PAYLOAD) {
        return ipsecif_input_payload(ctx, meta, IPSECIF_IPPROTO_ESP, pkt, now);
    }
    if (rc == IN_KEEPALIVE) {
        COUNT(ctx, ip.ifp, in_natt_keepalive);
        return IPSECIF_OK;
    }
    if (rc == IPSECIF_OK) {
        rc = ipsecif_esp_in_prepare(ip.sa, pkt, &j);
        if (rc == IPSECIF_OK) {
            ipsecif_esp_crypto(ctx->port->crypto, ip.sa, &jp, 1, false);
            return in_back(ctx, meta, pkt, &ip, &j, rc, NULL, now);
        }
    }
    return in_back(ctx, meta, pkt, &ip, NULL, rc, NULL, now);
}

/* One packet of an input batch between the stages. */
struct in_slot {
    struct ipsecif_outer_meta meta; /* parsed here when the batch has whole packets */
    const struct ipsecif_outer_meta *m;
    struct in_pkt ip;
    struct ipsecif_esp_job j;
    int rc;
    bool ours;   /* the ESP stages (or a keepalive) handle it; else rc is all there is */
    bool opened; /* prepared, waiting for the crypto */
    bool done;   /* in a crypto group already */
};

/* Does one more packet of esp_len bytes on sa, behind those prepared on it
 * in s[0..k), risk the SA's hard byte limit (the SA would die before the
 * ones behind, which then find no SA)? The ESP length bounds the payload. */
static bool in_must_split(const struct in_slot *s, size_t k, const struct ipsecif_sa *sa,
                          size_t esp_len)
{
    uint64_t bytes = esp_len;
    size_t n = 0;
    size_t i;

    if (sa->hard.bytes == 0) {
        return false;
    }
    for (i = 0; i < k; i++) {
        if (s[i].opened && s[i].ip.sa == sa) {
            bytes += s[i].j.len0;
            n++;
        }
    }
    return n > 0 && sa->bytes + bytes > sa->hard.bytes;
}

/* Host traffic goes through the per-packet path, alone in its slice so
 * that what it does to the SADB comes in order. */
static IPSECIF_NOINLINE int in_host_one(struct ipsecif_ctx *ctx, struct in_slot *x,
                                        struct ipsecif_buf *pkt, int kind, uint64_t now)
{
    if (kind == IN_HOST) {
        return ipsecif_host_deliver(ctx, pkt, now);
    }
    return ipsecif_input_payload(ctx, x->m, IPSECIF_IPPROTO_ESP, pkt, now);
}

/* Stages up to ESP's replay check for a slice; returns how many packets
 * it took (at least one). A packet for the host ends the slice before it,
 * or is the whole slice (and handled here) when it comes first. */
IPSECIF_FLATTEN static size_t in_open_slice(struct ipsecif_ctx *ctx,
                                            const struct ipsecif_outer_meta *metas,
                                            struct ipsecif_buf *const *pkts, size_t n,
                                            struct in_slot *s, uint64_t now)
{
    struct in_cache c;
    size_t k;

    memset(&c, 0, sizeof(c));
    for (k = 0; k < n && k < IPSECIF_BATCH_MAX; k++) {
        struct in_slot *x = &s[k];
        struct ipsecif_buf *pkt = pkts[k];
        struct ipsecif_buf view;
        int rc = IPSECIF_OK;

        x->ours = false;
        x->opened = false;
        x->done = false;
        if (!ipsecif_buf_valid(pkt) || (metas != NULL && !meta_ok(&metas[k]))) {
            x->rc = IPSECIF_ERR_ARG;
            continue;
        }
        /* A slice that ends before this packet leaves it as it came. */
        view = *pkt;
        if (metas == NULL) {
            rc = in_outer(ctx, pkt, &x->meta);
            x->m = &x->meta;
        } else {
            x->m = &metas[k];
        }
        if (rc == IPSECIF_OK) {
            rc = in_front(ctx, x->m, pkt, &x->ip, &c);
            x->ours = rc != IN_HOST_PAYLOAD;
        } else if (rc != IN_HOST) {
            count_drop(ctx, NULL, in_drops, rc); /* not ESP: the context's only */
        }
        if (rc == IN_HOST || rc == IN_HOST_PAYLOAD) {
            if (k > 0) {
                *pkt = view;
                break;
            }
            x->ours = false;
            x->rc = in_host_one(ctx, x, pkt, rc, now);
            return 1;
        }
        if (rc == IPSECIF_OK) {
            if (in_must_split(s, k, x->ip.sa, pkt->len)) {
                *pkt = view;
                break;
            }
            rc = ipsecif_esp_in_prepare(x->ip.sa, pkt, &x->j);
            x->opened = rc == IPSECIF_OK;
        }
        x->rc = rc;
    }
    return k;
}

/* The crypto of every prepared packet in s[0..n), one burst per SA. */
static void in_crypto(struct ipsecif_ctx *ctx, struct in_slot *s, size_t n)
{
    struct ipsecif_esp_job *jobs[IPSECIF_BATCH_MAX];
    size_t i, k, m;

    for (i = 0; i < n; i++) {
        if (!s[i].opened || s[i].done) {
            continue;
        }
        m = 0;
        for (k = i; k < n; k++) {
            if (s[k].opened && !s[k].done && s[k].ip.sa == s[i].ip.sa) {
                s[k].done = true;
                jobs[m++] = &s[k].j;
            }
        }
        ipsecif_esp_crypto(ctx->port->crypto, s[i].ip.sa, jobs, m, false);
    }
}

IPSECIF_FLATTEN static int in_batch(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *metas,
                                    struct ipsecif_buf *const *pkts, size_t n, uint64_t now,
                                    int *results)
{
    struct in_slot s[IPSECIF_BATCH_MAX];
    struct in_cache pc;
    size_t i = 0, k, m;
    int ok = 0;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || (n > 0 && pkts == NULL) ||
        n > (size_t)INT32_MAX) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    while (i < n) {
        m = in_open_slice(ctx, metas != NULL ? metas + i : NULL, pkts + i, n - i, s, now);
        in_crypto(ctx, s, m);
        memset(&pc, 0, sizeof(pc));
        for (k = 0; k < m; k++) {
            struct in_slot *x = &s[k];
            int rc = x->rc;

            if (x->ours && rc == IN_KEEPALIVE) {
                COUNT(ctx, x->ip.ifp, in_natt_keepalive);
                rc = IPSECIF_OK;
            } else if (x->ours) {
                rc =
                    in_back(ctx, x->m, pkts[i + k], &x->ip, x->opened ? &x->j : NULL, rc, &pc, now);
            }
            ok += rc == IPSECIF_OK;
            if (results != NULL) {
                results[i + k] = rc;
            }
        }
        i += m;
    }
    return ok;
}

int ipsecif_input_batch(struct ipsecif_ctx *ctx, struct ipsecif_buf *const *pkts, size_t n,
                        uint64_t now, int *results)
{
    return in_batch(ctx, NULL, pkts, n, now, results);
}

int ipsecif_input_esp_batch(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *metas,
                            struct ipsecif_buf *const *pkts, size_t n, uint64_t now, int *results)
{
    if (n > 0 && metas == NULL) {
        return IPSECIF_ERR_ARG;
    }
    return in_batch(ctx, metas, pkts, n, now, results);
}
